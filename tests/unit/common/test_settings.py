import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from infra.supervisor import SERVICE_RUNTIME
from services.common.settings import (
    DEV_MODE_VARIABLE,
    InfraSettings,
    ServiceSettings,
    UnsafeSettings,
    service_port,
)
from services.gateway.security import hash_api_key
from services.gateway.settings import DEV_PARTNER_KEY_SALT, DEV_PARTNER_KEY_SHA256, GatewaySettings
from services.scoring.settings import ScoringSettings
from tests.unit.service_settings import settings_class

REPO = Path(__file__).resolve().parents[3]


def test_defaults_point_at_the_project_ports() -> None:
    """The project ports, moved by the instance's offset (the test suite runs its own)."""
    infra = InfraSettings()
    assert infra.kafka_bootstrap == f"127.0.0.1:{service_port(19092)}"
    assert infra.redis_url.endswith(f":{service_port(16379)}/0")
    assert f":{service_port(15432)}/" in infra.postgres_dsn


def test_shared_infra_variables_reach_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALAMA_KAFKA_BOOTSTRAP", "kafka.internal:9092")
    assert GatewaySettings().infra.kafka_bootstrap == "kafka.internal:9092"
    assert ScoringSettings().infra.kafka_bootstrap == "kafka.internal:9092"


def test_service_prefix_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALAMA_SCORING_GRPC_PORT", "6000")
    monkeypatch.setenv("ALAMA_GATEWAY_PORT", "9999")
    assert ScoringSettings().grpc_port == 6000
    assert GatewaySettings().port == 9999
    assert GatewaySettings().service_name == "gateway"


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALAMA_SCORING_GRPC_PORT", "not-a-port")
    with pytest.raises(ValueError, match="grpc_port"):
        ScoringSettings()


# ---- development secrets are refused outside development mode ------------------------------

SERVICE_NAMES = (
    "gateway",
    "scoring",
    "explanation",
    "audit",
    "drift",
    "feature_store",
    "console",
    "outcomes",
)
STRONG = "k7Q2v9Zr4pXw8Ls1Nd6Fh3Tb0Yc5Jm2Ue"  # 34 bytes, no development prefix


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Development mode off, as compose and the Helm charts run the services."""
    monkeypatch.delenv(DEV_MODE_VARIABLE, raising=False)
    return monkeypatch


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_refuses_its_defaults_outside_development_mode(
    production: pytest.MonkeyPatch, name: str
) -> None:
    cls = settings_class(name)
    with pytest.raises(UnsafeSettings) as refused:
        cls()
    variables = {variable for variable, _ in refused.value.problems}
    assert "ALAMA_POSTGRES_DSN" in variables  # the local servers' password, "alama"
    assert "ALAMA_DEV_MODE=1" in str(refused.value)
    production.setenv(DEV_MODE_VARIABLE, "1")
    assert cls().dev_mode


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_starts_once_each_named_setting_is_set(
    production: pytest.MonkeyPatch, name: str
) -> None:
    """The refusal names variables that are really read: setting them is enough."""
    cls = settings_class(name)
    for _ in range(3):
        try:
            cls()
            return
        except UnsafeSettings as refused:
            for variable, _why in refused.problems:
                production.setenv(variable, strong_value(variable))
    pytest.fail(f"{cls.__name__} still refuses after every named setting was set")


def strong_value(variable: str) -> str:
    if variable.endswith("_API_KEYS"):
        salt = "5a" * 16
        entry = {"name": "p", "tenant": "sacco-a", "salt": salt, "scopes": ["admin"]}
        return json.dumps([entry | {"sha256": hash_api_key(STRONG, salt)}])
    if variable.endswith(("_DSN", "_URL")):
        return f"postgresql://alama:{STRONG}@db.internal:5432/alama"
    return STRONG


def test_the_gateway_names_each_development_secret(production: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsafeSettings) as refused:
        GatewaySettings()
    problems = dict(refused.value.problems)
    for variable in (
        "ALAMA_GATEWAY_JWT_SECRET",
        "ALAMA_GATEWAY_WEBHOOK_SECRET",
        "ALAMA_GATEWAY_PSEUDONYM_KEY",
    ):
        assert problems[variable] == "is the public development default"
    assert "development API key" in problems["ALAMA_GATEWAY_API_KEYS"]
    # a member's features are kept per tenant: webhook deliveries must name a real SACCO's
    assert "is not set" in problems["ALAMA_GATEWAY_WEBHOOK_TENANT"]
    message = str(refused.value)
    assert "ALAMA_GATEWAY_JWT_SECRET" in message and "at least 32 bytes" in message
    assert "secrets.token_urlsafe" in message


def test_short_secrets_and_the_development_api_key_are_refused(
    production: pytest.MonkeyPatch,
) -> None:
    for variable in ("JWT_SECRET", "WEBHOOK_SECRET", "PSEUDONYM_KEY"):
        production.setenv(f"ALAMA_GATEWAY_{variable}", STRONG)
    production.setenv("ALAMA_MEMBER_PSEUDONYM_KEY", STRONG)
    production.setenv("ALAMA_POSTGRES_DSN", strong_value("ALAMA_POSTGRES_DSN"))
    production.setenv("ALAMA_GATEWAY_WEBHOOK_TENANT", "sacco-a")
    dev_key = [
        {
            "name": "dev",
            "tenant": "dev-sacco",
            "salt": DEV_PARTNER_KEY_SALT,
            "sha256": DEV_PARTNER_KEY_SHA256,
            "scopes": ["admin"],
        }
    ]
    production.setenv("ALAMA_GATEWAY_API_KEYS", json.dumps(dev_key))
    with pytest.raises(UnsafeSettings, match="ALAMA_GATEWAY_API_KEYS holds the development"):
        GatewaySettings()
    production.setenv("ALAMA_GATEWAY_API_KEYS", strong_value("ALAMA_GATEWAY_API_KEYS"))
    assert not GatewaySettings().dev_mode
    production.setenv("ALAMA_GATEWAY_JWT_SECRET", "x" * 31)
    with pytest.raises(UnsafeSettings, match="JWT_SECRET is shorter than 32 bytes"):
        GatewaySettings()
    with pytest.raises(UnsafeSettings, match="WEBHOOK_SECRET is the public development"):
        GatewaySettings(
            jwt_secret=SecretStr(STRONG), webhook_secret=SecretStr("dev-only-" + STRONG)
        )


def test_infra_passwords_follow_the_same_rule(production: pytest.MonkeyPatch) -> None:
    production.setenv("ALAMA_REDIS_URL", "redis://:short@cache.internal:6379/0")
    with pytest.raises(UnsafeSettings) as refused:
        ScoringSettings()
    assert dict(refused.value.problems) == {
        "ALAMA_REDIS_URL": "has a password that is shorter than 32 bytes",
        "ALAMA_POSTGRES_DSN": "has a password that is shorter than 32 bytes",
    }
    production.setenv("ALAMA_REDIS_URL", f"redis://:{STRONG}@cache.internal:6379/0")
    production.setenv("ALAMA_POSTGRES_DSN", f"postgresql://db.internal/alama?password={STRONG}")
    assert ScoringSettings().infra.postgres_dsn.endswith(STRONG)
    production.setenv("ALAMA_POSTGRES_DSN", "postgresql://alama@db.internal/alama")  # no password
    production.setenv("ALAMA_REDIS_URL", "redis://cache.internal:6379/0")
    ScoringSettings()


def test_the_rule_covers_secrets_it_does_not_know_by_name(production: pytest.MonkeyPatch) -> None:
    """A service adding a secret (an audit MAC key, a list of rotated keys) is covered at once."""

    class Signer(BaseModel):
        key: SecretStr

    class NewServiceSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="ALAMA_NEW_", extra="ignore")

        mac_key: SecretStr = SecretStr("dev-only-mac-key-change-me")
        rotated: list[SecretStr] = [SecretStr(STRONG), SecretStr("too-short")]
        signer: Signer = Signer(key=SecretStr(STRONG))
        optional_key: SecretStr | None = None

    production.setenv("ALAMA_POSTGRES_DSN", strong_value("ALAMA_POSTGRES_DSN"))
    with pytest.raises(UnsafeSettings) as refused:
        NewServiceSettings()
    assert refused.value.problems == [
        ("ALAMA_NEW_MAC_KEY", "is the public development default"),
        ("ALAMA_NEW_ROTATED", "is shorter than 32 bytes"),
    ]
    with pytest.raises(UnsafeSettings, match="ALAMA_NEW_SIGNER is the public development"):
        NewServiceSettings(
            mac_key=SecretStr(STRONG),
            rotated=[SecretStr(STRONG)],
            signer=Signer(key=SecretStr("dev-only-" + STRONG)),
        )
    assert NewServiceSettings(mac_key=SecretStr(STRONG), rotated=[]).optional_key is None
    production.setenv(DEV_MODE_VARIABLE, "true")
    assert NewServiceSettings().dev_mode


@pytest.mark.parametrize("value", ["0", "false", "no", ""])
def test_only_an_explicit_yes_turns_development_mode_on(
    production: pytest.MonkeyPatch, value: str
) -> None:
    production.setenv(DEV_MODE_VARIABLE, value)
    if value == "":
        with pytest.raises(ValidationError):  # an empty flag is a mistake, not a "no"
            GatewaySettings()
    else:
        with pytest.raises(UnsafeSettings):
            GatewaySettings()


def test_the_test_suite_runs_in_development_mode() -> None:
    """make test keeps working: conftest turns it on for the tests and what they start."""
    assert os.environ[DEV_MODE_VARIABLE] == "1"
    assert GatewaySettings().dev_mode


def test_every_service_process_refuses_to_start(tmp_path: Path) -> None:
    """`python -m services.<name>` (each container's command) exits before it binds or connects;
    the eight start side by side to keep the test short."""
    env = {k: v for k, v in os.environ.items() if k != DEV_MODE_VARIABLE}
    env |= {  # nothing real is reachable even if the refusal failed
        "ALAMA_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "ALAMA_REDIS_URL": "redis://127.0.0.1:9/0",
        "ALAMA_RUN_DIR": str(tmp_path),
        "_TYPER_STANDARD_TRACEBACK": "1",  # the message as written, not wrapped in a box
        **SERVICE_RUNTIME,  # optimised, as in the images
    }
    for name in SERVICE_NAMES:
        for port in ("PORT", "GRPC_PORT", "METRICS_PORT"):
            env[f"ALAMA_{name.upper()}_{port}"] = "0"
    processes = {
        name: subprocess.Popen(
            [sys.executable, *command[1:]],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, command in CONTAINER_COMMANDS.items()
    }
    try:
        for name, process in processes.items():
            _, stderr = process.communicate(timeout=120)
            assert process.returncode != 0, name
            assert "refusing to start with development or weak secrets" in stderr, (name, stderr)
            assert "ALAMA_POSTGRES_DSN" in stderr, name
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


#: the Dockerfiles' CMD, without importing the deploy tests
CONTAINER_COMMANDS = {
    "gateway": ["python", "-m", "services.gateway"],
    "scoring": ["python", "-m", "services.scoring"],
    "explanation": ["python", "-m", "services.explanation"],
    "audit": ["python", "-m", "services.audit"],
    "drift": ["python", "-m", "services.drift"],
    "feature_store": ["python", "-m", "services.feature_store"],
    "console": ["python", "-m", "services.console"],
    "outcomes": ["python", "-m", "services.outcomes"],
}
