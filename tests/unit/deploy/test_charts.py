"""The Helm charts: lint, render, validate offline with kubeconform, and check what matters.

The pinned helm and kubeconform (and the schemas kubeconform reads) come from
`infra.deploy_tools`; a tool that cannot be installed fails the run, it never skips it. The charts
are copied to a temporary folder and their file:// dependencies built there, so the checkout gets
no vendored archives and a fresh clone needs nothing but this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import deploy_tools
from services.common.topics import (
    CREDIT_DECISIONS,
    GROUP,
    SERVICE_ACCESS,
    TOPIC,
    TOPICS,
    AclGrant,
    acl_bindings,
)

CHARTS = Path(__file__).resolve().parents[3] / "charts"
SERVICES = (
    "gateway",
    "scoring",
    "explanation",
    "feature-store",
    "audit",
    "drift",
    "console",
    "outcomes",
    "retrainer",
)
GRPC_PORTS = {"scoring": 50051, "explanation": 50052, "audit": 50053}
METRICS_PORTS = {
    "gateway": 9101,  # its operator port: /metrics and the API docs, off the public http port
    "scoring": 9103,
    "explanation": 9104,
    "feature-store": 9102,
    "audit": 9105,
    "drift": 9106,
    "console": 9109,  # a port of its own, off the pages staff reach
    "outcomes": 9107,
    "retrainer": 9108,
}
#: the services whose metrics are on a service port, not a port named "metrics" of their own
METRICS_PORT_NAMES: dict[str, str] = {}
#: who may call each gRPC service
GRPC_CALLERS = {
    "scoring": ["gateway", "console"],  # the console's model page
    "explanation": ["gateway", "console"],
    "audit": ["console"],  # applications' audit trails
}
#: who besides the monitoring namespace reads a service's metrics port
METRICS_READERS = {
    "drift": ("console",),  # PSI on the oversight page
    # live AUC and ECE on the oversight page; the shadow's pairs for promotion's gate
    "outcomes": ("console", "retrainer"),
}
#: consumers that run as one process: no autoscaler, no disruption budget (it would block drains)
SINGLE_REPLICA = {"drift", "outcomes", "retrainer"}
WITH_HPA = {"gateway", "scoring", "explanation", "audit", "console"}
WITH_PDB = {"gateway", "scoring", "explanation", "feature-store", "audit", "console"}
RELEASE = "alama"
MLFLOW = "http://mlflow.mlops:5000"
#: the charts that talk to MLflow's tracking server when there is one
MLFLOW_CLIENTS = {"drift", "scoring", "explanation", "retrainer"}
#: every service on mTLS: the brokers' CA and one client certificate per service
MTLS = (
    "global.kafka.securityProtocol=SSL",
    "global.kafka.caSecret=kafka-cluster-ca",
    *(f"{service}.kafka.tlsSecret=alama-{service}-kafka-tls" for service in SERVICES),
)

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Helm:
    tools: deploy_tools.DeployTools
    charts: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.tools.helm), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.charts,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}", pytrace=False)
        return result

    def template(self, chart: str = "alama", *sets: str) -> str:
        args = ["template", RELEASE, chart, "--namespace", "credit"]
        for item in sets:
            args += ["--set", item]
        return self.run(*args).stdout

    def render(self, chart: str = "alama", *sets: str) -> list[Manifest]:
        return [doc for doc in yaml.safe_load_all(self.template(chart, *sets)) if doc]


@pytest.fixture(scope="module")
def tools() -> deploy_tools.DeployTools:
    try:
        return deploy_tools.ensure_tools()
    except deploy_tools.ToolInstallError as exc:
        pytest.fail(f"the deployment tools could not be installed: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def helm(tools: deploy_tools.DeployTools, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    root = tmp_path_factory.mktemp("helm")
    charts = root / "charts"
    shutil.copytree(CHARTS, charts, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    env = dict(os.environ)
    for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[name] = str(root / name.lower())
    runner = Helm(tools, charts, env)
    # Services first: the umbrella packages each service chart together with its library.
    for chart in (*SERVICES, "alama"):
        runner.run("dependency", "build", chart)
    return runner


@pytest.fixture(scope="module")
def manifests(helm: Helm) -> list[Manifest]:
    return helm.render()


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    """name label (the chart) -> resource."""
    return {d["metadata"]["labels"]["app.kubernetes.io/name"]: d for d in docs if d["kind"] == kind}


def containers(deployment: Manifest) -> Iterator[Manifest]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_of(deployment: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("chart", ["alama-lib", *SERVICES, "alama"])
def test_lint(helm: Helm, chart: str) -> None:
    result = helm.run("lint", "--strict", chart)
    assert "0 chart(s) failed" in result.stdout


def test_kubeconform_accepts_every_rendering(
    helm: Helm, tools: deploy_tools.DeployTools, tmp_path: Path
) -> None:
    renderings = {
        "umbrella": helm.template(),
        "umbrella-monitored": helm.template(
            "alama",
            "global.serviceMonitor.enabled=true",
            "global.otlp.endpoint=http://otel-collector:4317",
            "scoring.bundle.initContainer.enabled=true",
            "scoring.bundle.initContainer.image=registry.example/alama-bundle:1",
            "kafkaAcls.job.enabled=true",
        ),
        "umbrella-mtls": helm.template("alama", *MTLS),
        "umbrella-registry": helm.template(
            "alama", f"global.mlflow.trackingUri={MLFLOW}", "retrainer.persistence.existingClaim=x"
        ),
        **{service: helm.template(service) for service in SERVICES},
    }
    files = []
    for name, text in renderings.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        files.append(str(path))
    result = subprocess.run(
        [*tools.kubeconform_args(), "-summary", "-output", "text", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout


def test_umbrella_renders_every_service(manifests: list[Manifest]) -> None:
    for kind in ("Deployment", "Service", "ServiceAccount", "NetworkPolicy"):
        assert set(of_kind(manifests, kind)) == set(SERVICES), kind
    assert set(of_kind(manifests, "ConfigMap")) == {*SERVICES, "kafka-acls"}
    assert set(of_kind(manifests, "HorizontalPodAutoscaler")) == WITH_HPA
    assert set(of_kind(manifests, "PodDisruptionBudget")) == WITH_PDB
    assert set(of_kind(manifests, "PersistentVolumeClaim")) == {"retrainer"}, "its work claim"
    assert not of_kind(manifests, "ServiceMonitor"), "ServiceMonitors are off by default"
    assert not [d for d in manifests if d["kind"] == "Secret"], "the charts never hold secrets"


def test_pods_run_non_root_on_a_read_only_root(manifests: list[Manifest]) -> None:
    for name, deployment in of_kind(manifests, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"], name
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["runAsNonRoot"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] == "tmp", name


def test_images_default_to_the_app_version(helm: Helm, manifests: list[Manifest]) -> None:
    for name, deployment in of_kind(manifests, "Deployment").items():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"ghcr.io/alama/alama-{name}:0.1.0", image
    pinned = of_kind(
        helm.render("alama", "global.image.repository=r.example/x", "global.image.tag=1.2.3"),
        "Deployment",
    )
    assert pinned["audit"]["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "r.example/x/alama-audit:1.2.3"
    )


def test_commands_match_the_services(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    for name, deployment in deployments.items():
        command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
        assert command == ["python", "-m", f"services.{name.replace('-', '_')}"], command


def test_grpc_services_are_probed_natively(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    for name, port in GRPC_PORTS.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)
            assert "httpGet" not in container[probe]
    gateway = deployments["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    console = deployments["console"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert console[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    for name in ("outcomes", "retrainer"):
        worker = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            # an aiokafka consumer with no API: its metrics endpoint answers once it has started
            assert worker[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    for name in ("feature-store", "drift"):
        # Faust workers: /livez fails for a stalled agent, while the metrics thread answers
        worker = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe"):
            assert worker[probe]["httpGet"] == {"path": "/livez", "port": "metrics"}, name
        # ready once its tables are recovered from their changelogs, not when metrics answer
        assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_ports_and_services(manifests: list[Manifest]) -> None:
    services = of_kind(manifests, "Service")
    for name, metrics in METRICS_PORTS.items():
        ports = {p["name"]: p["port"] for p in services[name]["spec"]["ports"]}
        assert ports[METRICS_PORT_NAMES.get(name, "metrics")] == metrics, name
        if name in GRPC_PORTS:
            assert ports["grpc"] == GRPC_PORTS[name]
        elif name not in {"gateway", "console"}:
            assert set(ports) == {"metrics"}, f"{name} is a worker: only its metrics port"
    gateway = {p["name"]: p["port"] for p in services["gateway"]["spec"]["ports"]}
    assert gateway == {"http": 8080, "metrics": 9101}
    config = of_kind(manifests, "ConfigMap")["gateway"]["data"]
    assert config["ALAMA_GATEWAY_METRICS_PORT"] == "9101", "the app listens where the chart says"
    console = {p["name"]: p["port"] for p in services["console"]["spec"]["ports"]}
    assert console == {"http": 8090, "metrics": 9109}, "the pages and /metrics apart"
    config = of_kind(manifests, "ConfigMap")["console"]["data"]
    assert config["ALAMA_CONSOLE_PORT"] == "8090", "the app listens where the chart says"
    assert config["ALAMA_CONSOLE_METRICS_PORT"] == "9109"


def test_gateway_reaches_the_grpc_services_by_their_service_names(
    manifests: list[Manifest],
) -> None:
    config = of_kind(manifests, "ConfigMap")["gateway"]["data"]
    services = {s["metadata"]["name"]: s for s in manifests if s["kind"] == "Service"}
    for key, name in (("SCORING", "scoring"), ("EXPLANATION", "explanation")):
        host, port = config[f"ALAMA_GATEWAY_{key}_TARGET"].split(":")
        assert host == f"{RELEASE}-{name}"
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    assert config["ALAMA_GATEWAY_HOST"] == "0.0.0.0"


def test_console_reads_drifts_psi_from_its_metrics_port(manifests: list[Manifest]) -> None:
    config = of_kind(manifests, "ConfigMap")["console"]["data"]
    services = {s["metadata"]["name"]: s for s in manifests if s["kind"] == "Service"}
    # drift's PSI and outcomes' live AUC and ECE, both on the oversight page
    for key, name in (("DRIFT", "drift"), ("OUTCOMES", "outcomes")):
        url = config[f"ALAMA_CONSOLE_{key}_METRICS_URL"]
        assert url == f"http://{RELEASE}-{name}:{METRICS_PORTS[name]}/metrics"
        assert METRICS_PORTS[name] in {
            p["port"] for p in services[f"{RELEASE}-{name}"]["spec"]["ports"]
        }
        assert "console" in METRICS_READERS[name], "its NetworkPolicy admits the console"


def test_console_reaches_explanation_by_its_service_name(manifests: list[Manifest]) -> None:
    config = of_kind(manifests, "ConfigMap")["console"]["data"]
    services = {s["metadata"]["name"]: s for s in manifests if s["kind"] == "Service"}
    for key, name in (("EXPLANATION", "explanation"), ("AUDIT", "audit"), ("SCORING", "scoring")):
        host, port = config[f"ALAMA_CONSOLE_{key}_TARGET"].split(":")
        assert host == f"{RELEASE}-{name}"
        assert int(port) == GRPC_PORTS[name]
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    assert config["ALAMA_CONSOLE_HOST"] == "0.0.0.0"


def test_settings_reach_every_service(manifests: list[Manifest]) -> None:
    configs = of_kind(manifests, "ConfigMap")
    for name, deployment in of_kind(manifests, "Deployment").items():
        data = configs[name]["data"]
        for key in ("ALAMA_KAFKA_BOOTSTRAP", "ALAMA_REDIS_URL", "ALAMA_ENVIRONMENT"):
            assert data[key], (name, key)
        assert data["HOME"] == "/tmp"
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert env_from == [{"configMapRef": {"name": configs[name]["metadata"]["name"]}}]
    for name in ("scoring", "feature-store", "retrainer"):  # the retrainer's job reads Feast
        data = configs[name]["data"]
        for key in ("HOST", "PORT", "DB", "USER"):
            assert data[f"ALAMA_FEAST_PG_{key}"], name
        assert data["ALAMA_FEAST_REDIS"] and data["ALAMA_FEAST_PROJECT"], name
    assert (
        configs["scoring"]["data"]["ALAMA_SCORING_BUNDLE_DIR"] == "/app/artifacts/bundles/current"
    )
    assert (
        configs["explanation"]["data"]["ALAMA_EXPLANATION_BUNDLE_ROOT"] == "/app/artifacts/bundles"
    )
    assert configs["drift"]["data"]["ALAMA_DRIFT_BUNDLE_DIR"] == "/app/artifacts/bundles/current"
    assert configs["drift"]["data"]["FAUST_DATADIR"].startswith("/tmp/")
    outcomes = configs["outcomes"]["data"]
    assert outcomes["ALAMA_OUTCOMES_BUNDLE_ROOT"] == "/app/artifacts/bundles", "every version"
    assert outcomes["ALAMA_OUTCOMES_METRICS_PORT"] == str(METRICS_PORTS["outcomes"])


def test_secrets_come_only_from_secret_key_refs(manifests: list[Manifest]) -> None:
    expected = {
        "gateway": {
            "ALAMA_POSTGRES_DSN",
            "ALAMA_GATEWAY_JWT_SECRET",
            "ALAMA_GATEWAY_WEBHOOK_SECRET",
            "ALAMA_GATEWAY_PSEUDONYM_KEY",
            "ALAMA_GATEWAY_API_KEYS",
            "ALAMA_MEMBER_PSEUDONYM_KEY",
        },
        "explanation": {"ALAMA_POSTGRES_DSN", "ALAMA_MEMBER_PSEUDONYM_KEY"},
        "console": {"ALAMA_POSTGRES_DSN", "ALAMA_MEMBER_PSEUDONYM_KEY"},
        "outcomes": {"ALAMA_POSTGRES_DSN", "ALAMA_MEMBER_PSEUDONYM_KEY"},
        "scoring": {"ALAMA_POSTGRES_DSN", "ALAMA_FEAST_PG_PASSWORD"},
        "retrainer": {
            "ALAMA_POSTGRES_DSN",
            "ALAMA_FEAST_PG_PASSWORD",
            "ALAMA_MEMBER_PSEUDONYM_KEY",
        },
        "feature-store": {
            "ALAMA_POSTGRES_DSN",
            "ALAMA_FEAST_PG_PASSWORD",
            "ALAMA_MEMBER_PSEUDONYM_KEY",
        },
        "audit": {
            "ALAMA_POSTGRES_DSN",
            "ALAMA_AUDIT_MAC_KEY",
            "ALAMA_AUDIT_WRITER_PASSWORD",
            "ALAMA_AUDIT_OWNER_PASSWORD",
        },
    }
    configs = of_kind(manifests, "ConfigMap")
    for name, deployment in of_kind(manifests, "Deployment").items():
        env = env_of(deployment)
        secret = {k for k, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
        # every service logs in to Kafka with its own SCRAM password
        assert secret == {*expected.get(name, {"ALAMA_POSTGRES_DSN"}), "ALAMA_KAFKA_PASSWORD"}, name
        assert all("value" not in env[k] for k in secret), name
        leaked = [
            k for k in configs[name]["data"] if k in secret or k.endswith(("_DSN", "_SECRET"))
        ]
        assert not leaked, f"{name}: secret settings in the ConfigMap: {leaked}"
    gateway = env_of(of_kind(manifests, "Deployment")["gateway"])
    assert gateway["ALAMA_GATEWAY_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "alama-gateway",
        "key": "jwt-secret",
    }


def test_secret_references_are_values(helm: Helm) -> None:
    docs = helm.render(
        "alama",
        "global.secrets.postgresDsn.name=vault-pg",
        "global.secrets.postgresDsn.key=url",
    )
    for name, deployment in of_kind(docs, "Deployment").items():
        ref = env_of(deployment)["ALAMA_POSTGRES_DSN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "vault-pg", "key": "url"}, name
    missing = helm.run(
        "template", RELEASE, "alama", "--set", "global.secrets.postgresDsn.name=", check=False
    )
    assert missing.returncode != 0
    assert "Secret name for ALAMA_POSTGRES_DSN is required" in missing.stderr


def test_network_policies(manifests: list[Manifest]) -> None:
    policies = of_kind(manifests, "NetworkPolicy")
    for name, policy in policies.items():
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == name
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        metrics_rule = spec["ingress"][-1]
        readers = [
            {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/instance": RELEASE,
                        "app.kubernetes.io/name": reader,
                    }
                }
            }
            for reader in METRICS_READERS.get(name, ())
        ]
        assert metrics_rule["from"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
            *readers,
        ], name
        egress_ports = {p["port"] for rule in spec["egress"] for p in rule.get("ports", [])}
        assert {53, 9092, 6379, 5432} <= egress_ports, name
    for name, callers in GRPC_CALLERS.items():
        app_rule = policies[name]["spec"]["ingress"][0]
        assert app_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
        labels = [peer["podSelector"]["matchLabels"] for peer in app_rule["from"]]
        assert labels == [
            {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": caller}
            for caller in callers
        ]
    public, operator = policies["gateway"]["spec"]["ingress"]
    assert "from" not in public, "the gateway is public"
    assert public["ports"] == [{"port": "http", "protocol": "TCP"}], "its http port only"
    assert operator["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert "from" in operator, "metrics and the API docs only for the monitoring namespace"
    for name in ("feature-store", "drift", "outcomes", "retrainer"):
        assert len(policies[name]["spec"]["ingress"]) == 1, f"{name}: only metrics comes in"
    # the console: staff's browsers (through the office network's proxy) on its http port, and
    # the monitoring namespace alone on its metrics port
    staff, monitoring = policies["console"]["spec"]["ingress"]
    assert "from" not in staff and staff["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert "from" in monitoring
    assert monitoring["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_network_policies_can_be_turned_off(helm: Helm) -> None:
    docs = helm.render(
        "alama", "global.networkPolicy.enabled=false", "gateway.networkPolicy.enabled=true"
    )
    assert set(of_kind(docs, "NetworkPolicy")) == {"gateway"}


def test_autoscalers_and_disruption_budgets(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    hpas = of_kind(manifests, "HorizontalPodAutoscaler")
    assert {"scoring", "explanation", "audit"} <= set(hpas), "the consumer groups scale out"
    partitions = {t.name: t.partitions for t in TOPICS}
    # a consumer-only service gains nothing from more replicas than its topics' partitions
    assert hpas["explanation"]["spec"]["maxReplicas"] <= partitions[CREDIT_DECISIONS]
    assert hpas["audit"]["spec"]["maxReplicas"] <= partitions[CREDIT_DECISIONS]
    assert hpas["console"]["spec"]["maxReplicas"] <= partitions[CREDIT_DECISIONS]
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployments[name]["metadata"]["name"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert "replicas" not in deployments[name]["spec"], "the autoscaler owns the replicas"
    pdbs = of_kind(manifests, "PodDisruptionBudget")
    assert pdbs["audit"]["spec"]["minAvailable"] == 1
    for name in SINGLE_REPLICA:
        assert deployments[name]["spec"]["replicas"] == 1, name
        assert name not in hpas and name not in pdbs, name
    for name, pdb in pdbs.items():
        assert deployments[name]["spec"].get("replicas", 2) > pdb["spec"]["minAvailable"], name


def test_service_monitors_render_when_enabled(helm: Helm) -> None:
    docs = helm.render(
        "alama",
        "global.serviceMonitor.enabled=true",
        "global.serviceMonitor.labels.release=prometheus",
        "drift.serviceMonitor.enabled=false",
    )
    monitors = of_kind(docs, "ServiceMonitor")
    services = of_kind(docs, "Service")
    assert set(monitors) == set(SERVICES) - {"drift"}
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        endpoint = monitor["spec"]["endpoints"][0]
        assert endpoint["port"] in {p["name"] for p in services[name]["spec"]["ports"]}, name
        assert endpoint["path"] == "/metrics"
    alone = of_kind(helm.render("scoring", "serviceMonitor.enabled=true"), "ServiceMonitor")
    assert set(alone) == {"scoring"}


def test_bundle_location_is_a_value(helm: Helm) -> None:
    docs = helm.render(
        "alama",
        "scoring.bundle.mountPath=/models",
        "scoring.bundle.subPath=v7",
        "scoring.bundle.volume.persistentVolumeClaim.claimName=bundles-v7",
    )
    assert of_kind(docs, "ConfigMap")["scoring"]["data"]["ALAMA_SCORING_BUNDLE_DIR"] == (
        "/models/v7"
    )
    pod = of_kind(docs, "Deployment")["scoring"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["bundle"]["persistentVolumeClaim"]["claimName"] == "bundles-v7"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "bundle")
    assert mount == {"name": "bundle", "mountPath": "/models", "readOnly": True}

    docs = helm.render(
        "alama",
        "scoring.bundle.initContainer.enabled=true",
        "scoring.bundle.initContainer.image=registry.example/alama-bundle:1",
    )
    pod = of_kind(docs, "Deployment")["scoring"]["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == "registry.example/alama-bundle:1"
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["bundle"]


def test_config_change_rolls_the_pods(helm: Helm, manifests: list[Manifest]) -> None:
    def checksums(docs: list[Manifest]) -> dict[str, str]:
        return {
            name: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for name, d in of_kind(docs, "Deployment").items()
        }

    before = checksums(manifests)
    after = checksums(helm.render("alama", "global.kafka.bootstrap=kafka-0.kafka:9092"))
    assert all(len(value) == 64 for value in before.values())
    assert all(before[name] != after[name] for name in SERVICES)
    only_scoring = checksums(helm.render("alama", "scoring.env.ALAMA_SCORING_MODEL_THREADS=4"))
    assert {n for n in SERVICES if only_scoring[n] != before[n]} == {"scoring"}


def test_services_can_be_left_out(helm: Helm) -> None:
    docs = helm.render("alama", "drift.enabled=false", "audit.enabled=false")
    assert set(of_kind(docs, "Deployment")) == set(SERVICES) - {"drift", "audit"}


def test_development_mode_is_never_on(helm: Helm, manifests: list[Manifest]) -> None:
    """The services accept development secrets only with ALAMA_DEV_MODE; no rendering sets it."""
    for path in (*CHARTS.rglob("*.yaml"), *CHARTS.rglob("*.tpl")):
        assert "ALAMA_DEV_MODE" not in path.read_text(), path
    for name, deployment in of_kind(manifests, "Deployment").items():
        for container in containers(deployment):
            assert "ALAMA_DEV_MODE" not in {e["name"] for e in container.get("env", [])}, name
    for name, config in of_kind(manifests, "ConfigMap").items():
        assert "ALAMA_DEV_MODE" not in config["data"], name
    for service in SERVICES:
        assert "ALAMA_DEV_MODE" not in helm.template(service), service


def test_kafka_security_and_durability_reach_every_service(manifests: list[Manifest]) -> None:
    configs = of_kind(manifests, "ConfigMap")
    for name, deployment in of_kind(manifests, "Deployment").items():
        data = configs[name]["data"]
        assert data["ALAMA_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert data["ALAMA_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert data["ALAMA_KAFKA_USERNAME"] == f"alama-{name}", name
        assert (
            data["ALAMA_KAFKA_REPLICATION_FACTOR"],
            data["ALAMA_KAFKA_MIN_INSYNC_REPLICAS"],
        ) == (
            "3",
            "2",
        ), name
        password = env_of(deployment)["ALAMA_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": "alama-kafka", "key": f"{name}-password"}, name


def test_kafka_mutual_tls_mounts_each_services_certificate(helm: Helm) -> None:
    docs = helm.render("alama", *MTLS)
    configs = of_kind(docs, "ConfigMap")
    for name, deployment in of_kind(docs, "Deployment").items():
        data = configs[name]["data"]
        assert data["ALAMA_KAFKA_SECURITY_PROTOCOL"] == "SSL", name
        assert "ALAMA_KAFKA_USERNAME" not in data and "ALAMA_KAFKA_PASSWORD" not in env_of(
            deployment
        ), name
        files = {data[f"ALAMA_KAFKA_{k}_FILE"] for k in ("CA", "CERT", "KEY")}
        assert files == {
            "/etc/alama/kafka-ca/ca.crt",
            "/etc/alama/kafka-tls/tls.crt",
            "/etc/alama/kafka-tls/tls.key",
        }, name
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["kafka-tls"]["secret"]["secretName"] == f"alama-{name}-kafka-tls", name
        assert volumes["kafka-ca"]["secret"]["secretName"] == "kafka-cluster-ca", name
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["kafka-tls"]["readOnly"] and mounts["kafka-ca"]["readOnly"], name
    no_certificate = helm.run(
        "template", RELEASE, "alama", "--set", "global.kafka.securityProtocol=SSL", check=False
    )
    assert no_certificate.returncode != 0
    assert "needs kafka.tlsSecret" in no_certificate.stderr


def acl_grants(docs: list[Manifest]) -> dict[str, set[AclGrant]]:
    """principal -> grants, read back from the ACL script's `acl` lines."""
    (config,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "alama-kafka-acls"
    ]
    grants: dict[str, set[AclGrant]] = {}
    for line in config["data"]["acls.sh"].splitlines():
        words = line.split()
        if not words or words[0] != "acl":
            continue
        _acl, principal, operation, kind, name, pattern_flag, pattern = words
        assert pattern_flag == "--resource-pattern-type", line
        resource = {"--topic": TOPIC, "--group": GROUP}[kind]
        grants.setdefault(principal, set()).add(AclGrant(resource, name, operation, pattern))
    return grants


def test_kafka_acls_grant_each_service_exactly_what_the_access_table_says(
    manifests: list[Manifest],
) -> None:
    """The chart's ACL table is a copy of SERVICE_ACCESS (Helm cannot read Python): this is
    what keeps them one table."""
    configs = of_kind(manifests, "ConfigMap")
    usernames = {n: configs[n]["data"]["ALAMA_KAFKA_USERNAME"] for n in SERVICES}
    expected = {
        f"User:{usernames[access.chart]}": set(acl_bindings(access)) for access in SERVICE_ACCESS
    }
    assert acl_grants(manifests) == expected


def test_kafka_acls_follow_the_enabled_services_and_the_job_is_a_hook(helm: Helm) -> None:
    docs = helm.render("alama", "drift.enabled=false", "kafkaAcls.job.enabled=true")
    assert "User:alama-drift" not in acl_grants(docs)
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    admin = {v["name"]: v for v in pod["volumes"]}["admin"]["secret"]
    assert admin["secretName"] == "alama-kafka-admin"
    assert not [d for d in helm.render("alama") if d["kind"] == "Job"], "the job is opt-in"


def test_link_mode_without_a_tracking_server(manifests: list[Manifest]) -> None:
    """No global.mlflow.trackingUri: scoring serves the claim's `current` link, read-only, and
    nothing is told of an MLflow server (the retrainer keeps MLflow's local store on its claim)."""
    configs = {n: c["data"] for n, c in of_kind(manifests, "ConfigMap").items()}
    assert not [n for n, data in configs.items() if "MLFLOW_TRACKING_URI" in data]
    assert configs["scoring"]["ALAMA_SCORING_MODEL_SOURCE"] == "link"
    assert configs["scoring"]["ALAMA_SCORING_BUNDLE_DIR"] == "/app/artifacts/bundles/current"
    assert "ALAMA_SCORING_BUNDLE_ROOT" not in configs["scoring"]
    deployments = of_kind(manifests, "Deployment")
    for name in ("scoring", "explanation", "drift", "outcomes"):
        pod = deployments[name]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["bundle"]
        assert volume["persistentVolumeClaim"]["claimName"] == "alama-model-bundles", name
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "bundle")
        assert mount["readOnly"] is True, name
    egress = {
        p["port"]
        for policy in of_kind(manifests, "NetworkPolicy").values()
        for rule in policy["spec"]["egress"]
        for p in rule.get("ports", [])
    }
    assert 5000 not in egress


def test_registry_mode_follows_mlflow_and_downloads_into_a_writable_root(helm: Helm) -> None:
    """global.mlflow.trackingUri set: scoring follows the champion alias, scoring and
    explanation download bundles from MLflow into an emptyDir, the retrainer registers there;
    drift takes its reference from the champion the same way; outcomes keeps reading the claim."""
    docs = helm.render("alama", f"global.mlflow.trackingUri={MLFLOW}")
    configs = {n: c["data"] for n, c in of_kind(docs, "ConfigMap").items()}
    told = {n for n, data in configs.items() if data.get("MLFLOW_TRACKING_URI") == MLFLOW}
    assert told == MLFLOW_CLIENTS
    scoring = configs["scoring"]
    assert scoring["ALAMA_SCORING_MODEL_SOURCE"] == "registry"
    assert scoring["ALAMA_SCORING_BUNDLE_ROOT"] == "/app/artifacts/bundles"
    assert "ALAMA_SCORING_BUNDLE_DIR" not in scoring
    assert configs["explanation"]["ALAMA_EXPLANATION_MODEL_REGISTRY"] == "true"
    assert configs["explanation"]["ALAMA_EXPLANATION_BUNDLE_ROOT"] == "/app/artifacts/bundles"
    assert configs["drift"]["ALAMA_DRIFT_REFERENCE_SOURCE"] == "registry"
    assert configs["drift"]["ALAMA_DRIFT_BUNDLE_ROOT"] == "/app/artifacts/bundles"
    assert "ALAMA_DRIFT_BUNDLE_DIR" not in configs["drift"]
    deployments = of_kind(docs, "Deployment")
    for name in ("scoring", "explanation", "drift"):
        pod = deployments[name]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["bundle"]
        assert "emptyDir" in volume and "persistentVolumeClaim" not in volume, name
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "bundle")
        assert not mount.get("readOnly"), f"{name} downloads bundles into its root"
    for name in ("outcomes",):
        pod = deployments[name]["spec"]["template"]["spec"]
        volume = {v["name"]: v for v in pod["volumes"]}["bundle"]
        assert volume["persistentVolumeClaim"]["readOnly"] is True, name
    policies = of_kind(docs, "NetworkPolicy")
    to_mlflow = {
        name
        for name, policy in policies.items()
        for rule in policy["spec"]["egress"]
        if 5000 in {p["port"] for p in rule.get("ports", [])}
    }
    assert to_mlflow == MLFLOW_CLIENTS

    # a chart can stay in link mode, and the bundle's init container is for link mode only
    docs = helm.render(
        "alama",
        f"global.mlflow.trackingUri={MLFLOW}",
        "scoring.bundle.registry.enabled=false",
        "explanation.bundle.initContainer.enabled=true",
        "explanation.bundle.initContainer.image=registry.example/alama-bundle:1",
    )
    scoring = of_kind(docs, "ConfigMap")["scoring"]["data"]
    assert scoring["ALAMA_SCORING_MODEL_SOURCE"] == "link"
    assert scoring["MLFLOW_TRACKING_URI"] == MLFLOW
    explanation = of_kind(docs, "Deployment")["explanation"]["spec"]["template"]["spec"]
    assert "initContainers" not in explanation
    alone = of_kind(helm.render("scoring", f"global.mlflow.trackingUri={MLFLOW}"), "ConfigMap")
    assert alone["scoring"]["data"]["ALAMA_SCORING_MODEL_SOURCE"] == "registry"


def test_retrainer_writes_the_bundle_store_and_keeps_its_work_on_a_claim(
    helm: Helm, manifests: list[Manifest]
) -> None:
    deployment = of_kind(manifests, "Deployment")["retrainer"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "never two trainers at once"
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    # the shared bundle store, written: challengers' bundles and the `current` link
    assert volumes["bundle"]["persistentVolumeClaim"] == {"claimName": "alama-model-bundles"}
    assert mounts["bundle"]["mountPath"] == "/app/artifacts/bundles"
    assert not mounts["bundle"].get("readOnly")
    # its work claim under training's artifacts folder (training/paths.py)
    assert mounts["data"]["mountPath"] == "/app/artifacts" and not mounts["data"].get("readOnly")
    claim = of_kind(manifests, "PersistentVolumeClaim")["retrainer"]
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = of_kind(manifests, "ConfigMap")["retrainer"]["data"]
    assert data["ALAMA_RETRAINER_BUNDLE_ROOT"] == "/app/artifacts/bundles"
    for key in ("ALAMA_RETRAINER_WORK_DIR", "ALAMA_REGISTRY_OUTBOX"):
        assert data[key].startswith("/app/artifacts/") and "/bundles/" not in data[key], key
    assert data["ALAMA_RETRAINER_METRICS_PORT"] == str(METRICS_PORTS["retrainer"])
    assert data["ALAMA_RETRAINER_DB_SCHEMA"] == "retrainer"

    docs = helm.render("alama", "retrainer.persistence.existingClaim=trained-artifacts")
    assert not of_kind(docs, "PersistentVolumeClaim"), "an existing claim is used, not made"
    pod = of_kind(docs, "Deployment")["retrainer"]["spec"]["template"]["spec"]
    claim_name = {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"]
    assert claim_name == {"claimName": "trained-artifacts"}
