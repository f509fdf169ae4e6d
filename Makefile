# Alama: `make demo` runs the system, `make test` runs the tests. `make help` lists every target.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_VERSION := 3.11
UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
KAFKA_LIB := infra/kafka/lib
export UV_PYTHON := python$(PYTHON_VERSION)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# torch's OpenMP threads busy-wait on a shared 2-core machine; passive waiting keeps them fast.
export OMP_WAIT_POLICY ?= PASSIVE
# Every Python process (tests, services, spawned workers) caches its compiled modules here, out
# of the source tree. Where the environment says PYTHONDONTWRITEBYTECODE (this machine kind does)
# each process otherwise compiled Feast, LightGBM, torch and the project from source again: about
# half of a service's 15 s start. Python checks each cached file against its source's time and
# size, so an edited module never runs stale.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX ?= $(CURDIR)/.run-pycache
# The local targets run on the public development secrets (and the tests on short ones); the
# services refuse them unless this is on. Compose and the Helm charts never set it.
export ALAMA_DEV_MODE ?= 1
# Feast's hosts and ports (feature_repo/feature_store.yaml) are derived from the same settings
# as every service's (services/common/feast_config.py), so the test instance's Feast is its own.
# The test suite runs on a second instance of everything: its own run folder and ports shifted
# by 11,000 (services/common/settings.py), so the demo and a developer's running system never
# see test data, and the tests never see theirs.
TEST_INSTANCE := ALAMA_RUN_DIR=$(CURDIR)/.run-test ALAMA_PORT_OFFSET=11000

SYSTEM_PACKAGES := redis-server postgresql-15 openjdk-17-jre-headless maven

.PHONY: help setup system-packages lock protos infra-up infra-down infra-status test screenshots test-down test-unit train \
        test-integration test-e2e lint format demo fuzz chaos bench bench-quick bench-console profile soak mlserver-env bench-import up deploy-tools charts-check services-status services-down down clean \
        compose-env promote rollback loop

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

setup: system-packages $(VENV)/.synced $(KAFKA_LIB)/.fetched ## Install everything: Debian packages, pinned Python packages, Kafka jars (idempotent)

system-packages: ## Install Redis, PostgreSQL 15, Java 17, Maven and Chromium (browser tests) from Debian's packages when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	test -x /usr/lib/postgresql/15/bin/postgres || missing="$$missing postgresql-15"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(UV):
	python$(PYTHON_VERSION) -m venv .tools/uv
	.tools/uv/bin/pip install -q uv==$(UV_VERSION)

# Only the lock decides what is installed; uv's cache keeps PyTorch's 3 GB of wheels, so a
# re-sync (or a fresh clone on the same machine) links them instead of downloading them again.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	touch $@

$(KAFKA_LIB)/.fetched: infra/kafka/pom.xml
	rm -rf $(KAFKA_LIB)
	mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies
	touch $@

lock: | $(UV) ## Re-resolve the pinned dependency set after editing pyproject.toml
	$(UV) lock

protos: $(VENV)/.synced ## Regenerate services/common/protos from protos/
	$(PY) -m infra.protogen

infra-up: setup ## Start Kafka (KRaft), Redis and PostgreSQL and create the topics; waits for readiness
	$(PY) -m infra.local up

infra-down: ## Stop the local servers (data under .run/ is kept)
	@if [ -x $(PY) ]; then $(PY) -m infra.local down; else echo "nothing installed, nothing running"; fi

infra-status: ## Show whether each local server is up
	$(PY) -m infra.local status

test: setup ## Run unit, integration and e2e tests on the test instance's own servers, then lint
	$(TEST_INSTANCE) $(PY) -m infra.local up
	$(TEST_INSTANCE) $(PY) -m pytest -m "not loop" --durations=40 tests/unit tests/integration tests/e2e
	$(MAKE) --no-print-directory lint

screenshots: setup ## The browser tests' screenshots of the console's pages into docs/screenshots (the README shows them)
	$(TEST_INSTANCE) $(PY) -m infra.local up
	$(TEST_INSTANCE) ALAMA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/e2e/test_console_browser.py

test-down: ## Stop the test instance's services and servers (its data under .run-test/ is kept)
	@if [ -x $(PY) ]; then $(TEST_INSTANCE) $(PY) -m infra.supervisor down; \
		$(TEST_INSTANCE) $(PY) -m infra.local down; fi

test-unit: setup ## Unit tests only (no servers)
	$(PY) -m pytest tests/unit

deploy-tools: setup ## Install the pinned helm and kubeconform (and offline Kubernetes schemas) into .tools
	$(PY) -m infra.deploy_tools

charts-check: deploy-tools ## Lint, render and validate the Helm charts (kubeconform, offline)
	$(PY) -m pytest -q tests/unit/deploy/test_charts.py

lint: setup ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy services infra bench simulator member_rights

format: setup ## Apply ruff's fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

PROFILE ?= quick
SOURCE ?= synthetic
train: infra-up ## Train on PROFILE=tiny|quick|full|xl and SOURCE=synthetic|csv:DIR|parquet:DIR|home-credit:DIR
	$(PY) -m training all --profile $(PROFILE) --source $(SOURCE)

loop: setup ## Issue 13's acceptance run (LOOP_PROFILE=medium, ~30 min): a shocked world drifts, a challenger is retrained, shadowed and gated (then promoted and rolled back, or refused); writes .run-test/closing-the-loop.json
	$(TEST_INSTANCE) $(PY) -m infra.local up
	$(TEST_INSTANCE) ALAMA_LOOP_PROFILE=$(or $(LOOP_PROFILE),medium) $(PY) -m pytest -m loop tests/e2e/test_closing_the_loop.py

promote: setup ## Promote the challenger if the gate holds: BY=name [VERSION=n] [OUTCOMES_URL=http://127.0.0.1:9107]
	$(PY) -m training promote --by "$(BY)" $(if $(VERSION),--version $(VERSION)) $(if $(OUTCOMES_URL),--outcomes-url $(OUTCOMES_URL))

rollback: setup ## Back to the previous champion in one command: BY=name
	$(PY) -m training rollback --by "$(BY)"

demo: infra-up ## Run the whole system end to end (today: what exists so far, and what is missing)
	$(PY) -m infra.demo

up: infra-up ## Start the servers and the eight services (needs a promoted bundle: make train)
	$(PY) -m infra.supervisor up

services-status: ## Show whether each service is up and ready
	$(PY) -m infra.supervisor status

services-down: ## Stop the eight services (SIGTERM: they finish and commit their work)
	@if [ -x $(PY) ]; then $(PY) -m infra.supervisor down; fi

bench-import: setup ## Import 10 million mobile-money rows and measure time and peak memory (bench/results/import.*)
	$(PY) -m bench.import_scale

fuzz: setup ## Fuzz every gateway route from its OpenAPI schema, 1,000 examples each (no 5xx allowed)
	ALAMA_FUZZ_EXAMPLES=1000 $(PY) -m pytest tests/unit/gateway/test_openapi_fuzz.py

chaos: infra-up ## Break one thing at a time under load (kill -9 each service, restart the broker, stop Redis and PostgreSQL, scale scoring); writes bench/results/chaos.json and .md
	$(PY) -m bench.chaos --scale standard

bench: infra-up mlserver-env ## Measure the running system beside MLServer (API at 50/200/500/1000 req/s, CPU per process, batch, ONNX floor, pipeline); writes bench/results/latest.json and .md
	$(PY) -m bench

bench-quick: infra-up ## The synchronous path alone at RATES (default 50,100,200) for SECONDS each (p50/p95/p99, CPU per request by process), the audit append, and INGEST (default 20000) transactions webhook to Feast; for a before-and-after (bench/results/quick.json and .md)
	$(PY) -m bench.quick --rates $(or $(RATES),50,100,200) --seconds $(or $(SECONDS),30) --ingest $(or $(INGEST),20000)

bench-console: infra-up ## The console's queue and item pages with 100,000 decisions and 10,000 open items (bench/results/console-queue.json and .md)
	$(PY) -m bench.console_queue

profile: infra-up ## Every service under load, sampled by py-spy: bench/results/profile-<service>.svg and profiles.md
	$(PY) -m bench.profile_services

soak: infra-up ## 30 minutes at 200 requests/s: p99 per minute and every process's memory, drift and creep reported (bench/results/soak.json and .md)
	$(PY) -m bench.soak --minutes $(or $(MINUTES),30) --rate $(or $(RATE),200)

# MLServer, the generic model server `make bench` compares with, pins FastAPI and pydantic
# versions Alama does not use: it gets its own environment, from its own pinned list.
mlserver-env: .venv-mlserver/.synced ## Install MLServer and mlserver-lightgbm (pinned) into .venv-mlserver for the benchmark

.venv-mlserver/.synced: bench/mlserver/requirements.txt | $(UV)
	rm -rf .venv-mlserver
	$(UV) venv -q .venv-mlserver
	$(UV) pip sync -q --require-hashes -p .venv-mlserver/bin/python bench/mlserver/requirements.txt
	touch $@

# Every variable docker-compose.yml requires (`${NAME:?...}`), each a random URL-safe 32-byte
# token; an API key list gets one partner key made by the gateway's own code (salted SHA-256),
# the key itself printed once.
define COMPOSE_ENV_SCRIPT
import re, secrets, sys
from services.gateway.security import new_api_key
from services.gateway.settings import ApiKey
names = sorted(set(re.findall(r"\$${(\w+):\?", open("docker-compose.yml").read())))
for name in names:
    if name.endswith("_API_KEYS"):
        key, salt, digest = new_api_key()
        scopes = ["score:write", "decisions:read", "explanations:read"]
        entry = ApiKey(name="partner", tenant="partner", salt=salt, sha256=digest, scopes=scopes)
        print(f"{name}='[{entry.model_dump_json()}]'")
        print(f"the partner API key (X-API-Key), shown only now: {key}", file=sys.stderr)
    else:
        print(f"{name}={secrets.token_urlsafe(32)}")
endef
export COMPOSE_ENV_SCRIPT
COMPOSE_ENV ?= .run/compose.env

compose-env: | $(VENV)/.synced ## Generate the secrets docker compose requires into .run/compose.env (kept if present)
	@if [ -e "$(COMPOSE_ENV)" ]; then \
	  echo "$(COMPOSE_ENV) exists; delete it for new secrets"; \
	else \
	  mkdir -p "$(dir $(COMPOSE_ENV))"; \
	  umask 077; \
	  $(PY) -c "$$COMPOSE_ENV_SCRIPT" > "$(COMPOSE_ENV).tmp"; \
	  mv "$(COMPOSE_ENV).tmp" "$(COMPOSE_ENV)"; \
	  echo "wrote $(COMPOSE_ENV): docker compose --env-file $(COMPOSE_ENV) up -d --build"; \
	fi

down: services-down infra-down test-down ## Stop everything Alama started (the test instance too)

clean: down ## Stop everything and delete the run folder and installed environments
	rm -rf .run .run-test .run-pycache $(VENV) .tools $(KAFKA_LIB)
