"""How every Kafka client authenticates: the options of `InfraSettings`' security block.

`client_options` serves every aiokafka client (producer, consumer, admin) and
`services.common.faust_app.faust_credentials` the Faust apps, so all reach the broker the same
way: PLAINTEXT on a developer's machine, SASL/SCRAM (over TLS in a cluster) or mTLS with a client
certificate. The TLS context trusts the
CA file when one is given (else the system's roots) and presents the client certificate when one
is given.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from services.common.settings import InfraSettings


def ssl_context(infra: InfraSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL; None for the plaintext protocols."""
    if infra.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return create_ssl_context(
        cafile=infra.kafka_ca_file, certfile=infra.kafka_cert_file, keyfile=infra.kafka_key_file
    )


def client_options(infra: InfraSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin, AIOKafkaClient)."""
    options: dict[str, Any] = {
        "bootstrap_servers": infra.kafka_bootstrap,
        "security_protocol": infra.kafka_security_protocol,
    }
    context = ssl_context(infra)
    if context is not None:
        options["ssl_context"] = context
    if infra.kafka_security_protocol.startswith("SASL_"):
        assert infra.kafka_password is not None  # InfraSettings refuses SASL without one
        options |= {
            "sasl_mechanism": infra.kafka_sasl_mechanism,
            "sasl_plain_username": infra.kafka_username,
            "sasl_plain_password": infra.kafka_password.get_secret_value(),
        }
    return options
