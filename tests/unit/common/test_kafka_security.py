"""Every Kafka client takes its authentication and durability from InfraSettings."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr, ValidationError

from services.common.faust_app import create_faust_app, faust_credentials
from services.common.kafka import create_admin, create_consumer, create_producer
from services.common.kafka_security import client_options
from services.common.settings import InfraSettings, ServiceSettings, UnsafeSettings

STRONG = "k" * 40


def scram(**extra: object) -> InfraSettings:
    fields: dict[str, object] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_username": "alama-scoring",
        "kafka_password": SecretStr(STRONG),
        "postgres_dsn": f"postgresql://alama:{STRONG}@db/alama",
    }
    return InfraSettings(**(fields | extra))  # type: ignore[arg-type]


def test_plaintext_is_the_local_default() -> None:
    infra = InfraSettings()
    assert client_options(infra) == {
        "bootstrap_servers": infra.kafka_bootstrap,
        "security_protocol": "PLAINTEXT",
    }
    assert (infra.kafka_replication_factor, infra.kafka_min_insync_replicas) == (1, 1)
    assert faust_credentials(infra) is None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALAMA_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ALAMA_KAFKA_USERNAME", "alama-audit")
    monkeypatch.setenv("ALAMA_KAFKA_PASSWORD", STRONG)
    monkeypatch.setenv("ALAMA_KAFKA_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("ALAMA_KAFKA_MIN_INSYNC_REPLICAS", "2")
    infra = InfraSettings()
    options = client_options(infra)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "alama-audit",
        STRONG,
    )
    assert "ssl_context" not in options
    assert (infra.kafka_replication_factor, infra.kafka_min_insync_replicas) == (3, 2)


async def test_every_aiokafka_client_authenticates() -> None:
    infra = scram()
    clients = [
        create_producer(infra, client_id="p"),
        create_consumer(infra, "t", group_id="g", client_id="c"),
    ]
    inners = [clients[0].client, clients[1]._client]
    for inner in inners:
        assert inner._security_protocol == "SASL_SSL"
        assert inner._sasl_mechanism == "SCRAM-SHA-256"
        assert inner._sasl_plain_password == STRONG
        assert isinstance(inner._ssl_context, ssl.SSLContext)
    admin = create_admin(infra)
    assert admin._client._sasl_plain_username == "alama-scoring"
    for client in clients:
        await client.stop()


def test_faust_gets_the_same_credentials_and_replication() -> None:
    settings = ServiceSettings(
        infra=scram(kafka_replication_factor=3, kafka_min_insync_replicas=2), dev_mode=False
    )
    app = create_faust_app(settings, app_id="alama-unit-scram")
    credentials = app.conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password) == ("alama-scoring", STRONG)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.protocol.value == "SASL_SSL"
    assert app.conf.topic_replication_factor == 3


def test_mutual_tls_presents_the_client_certificate(tmp_path: Path) -> None:
    ca, cert, key = _self_signed(tmp_path)
    infra = InfraSettings(
        kafka_security_protocol="SSL", kafka_ca_file=ca, kafka_cert_file=cert, kafka_key_file=key
    )
    options = client_options(infra)
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options
    assert isinstance(faust_credentials(infra), SSLCredentials)


def test_incomplete_security_is_refused() -> None:
    with pytest.raises(ValidationError, match="ALAMA_KAFKA_PASSWORD"):
        InfraSettings(kafka_security_protocol="SASL_SSL", kafka_username="u")
    with pytest.raises(ValidationError, match="go together"):
        InfraSettings(kafka_security_protocol="SSL", kafka_cert_file="/c.pem")
    with pytest.raises(ValidationError, match="cannot exceed"):
        InfraSettings(kafka_replication_factor=1, kafka_min_insync_replicas=2)
    with pytest.raises(ValidationError):
        InfraSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN")


@pytest.mark.parametrize("password", ["dev-only-kafka-scram-password", "short"])
def test_a_weak_kafka_password_is_refused_outside_development(password: str) -> None:
    infra = scram(kafka_password=SecretStr(password))
    with pytest.raises(UnsafeSettings) as refused:
        ServiceSettings(infra=infra, dev_mode=False)
    assert "ALAMA_KAFKA_PASSWORD" in [variable for variable, _why in refused.value.problems]
    assert ServiceSettings(infra=infra, dev_mode=True).infra.kafka_password is not None


def _self_signed(folder: Path) -> tuple[str, str, str]:
    """A throwaway CA-less certificate and key (the CA file is the certificate itself)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alama-scoring")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "client.pem", folder / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(cert_path), str(key_path)
