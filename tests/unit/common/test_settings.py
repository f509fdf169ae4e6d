import pytest

from services.common.settings import InfraSettings
from services.gateway.settings import GatewaySettings
from services.scoring.settings import ScoringSettings


def test_defaults_point_at_the_project_ports() -> None:
    infra = InfraSettings()
    assert infra.kafka_bootstrap == "127.0.0.1:19092"
    assert infra.redis_url.endswith(":16379/0")
    assert ":15432/" in infra.postgres_dsn


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
