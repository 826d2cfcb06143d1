# Every target creates or reuses .venv and installs the project into it first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DATA   ?= data

.PHONY: setup system kafka-jars console demo demo-kafka offline-demo test lint model serve serve-fast bench bench-compare bench-quick evaluate clean

# Ray Serve's throughput-optimized mode, and its HAProxy ingress where Debian's haproxy is
# installed (read when the recipe runs, after setup): how the service is started everywhere
# (serve_config.yaml cannot set this; deployments/serve_mode.py holds the same variables).
FAST_ENV = RAY_SERVE_THROUGHPUT_OPTIMIZED=1 $$(test -x /usr/sbin/haproxy && echo RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_HAPROXY_BINARY_PATH=/usr/sbin/haproxy RAY_SERVE_HAPROXY_NBTHREAD=1 RAY_SERVE_HAPROXY_METRICS_ENABLED=0)

setup: system $(STAMP) kafka-jars console

## Debian's packages the service and the tests use: redis-server (durable state, the stream
## path and their tests), haproxy (Serve's fast ingress), wrk (load generator), chromium and
## chromium-driver (the dashboard's browser test), iproute2 (the network-namespace drills),
## maven (fetches the Kafka broker's jars; it brings a Java runtime).
## Installs the missing ones where apt-get runs as root; elsewhere says what to install.
DEBIAN_PACKAGES = redis-server haproxy wrk chromium chromium-driver iproute2 maven

system:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	else echo "missing Debian packages:" $$missing "(apt-get install them as root);" \
		"without haproxy the service uses Serve's own proxy (slower), and the tests need the rest"; fi

## The venv: made once, and again when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## The Kafka broker's jars (infra/kafka/pom.xml) from Maven Central into .kafka/lib, once:
## `fraud kafka start` and the Kafka tests run a single KRaft broker from them.
kafka-jars: $(STAMP)
	@$(VENV)/bin/fraud kafka fetch

## The analyst console (console/, Next.js): its packages from the committed lockfile, then a
## static export (console/out) that the ingress serves at /dashboard; rebuilt when a source
## changes. Needs Node.js >= 20.9 and npm.
CONSOLE_SRC := $(wildcard console/app/*.tsx console/app/*.css console/app/*/*.tsx \
	console/components/*.tsx console/lib/*.ts console/lib/*.tsx) \
	console/next.config.ts console/tsconfig.json
console: console/out/index.html

console/node_modules/.package-lock.json: console/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to build the console (Node.js >= 20.9)"; exit 1; }
	cd console && npm ci --no-audit --no-fund --loglevel=error

console/out/index.html: console/node_modules/.package-lock.json $(CONSOLE_SRC)
	cd console && NEXT_TELEMETRY_DISABLED=1 npm run --silent build >/dev/null
	@touch $@

## The main job: start the service on a local Ray cluster (serve run serve_config.yaml),
## simulate 14 days of 2,000 cards, replay them with delayed labels, report, shut down.
demo: setup
	$(VENV)/bin/fraud simulate --customers 2000 --terminals 4000 --days 14 --seed 42 \
		--card-testing-per-day 2 --device-farms-per-day 1 --takeovers-per-day 2 \
		--cross-border-per-day 2 --output $(DATA)/demo.parquet
	$(VENV)/bin/fraud demo --input $(DATA)/demo.parquet --json $(DATA)/demo-report.json

## The main job through Kafka: a broker of the demo's own, the service consuming its topic,
## every decision read back from the decisions topic (exactly once).
demo-kafka: setup
	$(VENV)/bin/fraud simulate --customers 2000 --terminals 4000 --days 14 --seed 42 \
		--card-testing-per-day 2 --device-farms-per-day 1 --takeovers-per-day 2 \
		--cross-border-per-day 2 --output $(DATA)/demo.parquet
	$(VENV)/bin/fraud demo --source kafka --input $(DATA)/demo.parquet --json $(DATA)/demo-kafka-report.json

## The offline pipeline on a fresh stream: simulate, train with Ray Train, evaluate.
offline-demo: setup
	$(VENV)/bin/fraud simulate --customers 2000 --terminals 4000 --days 60 --seed 42 \
		--card-testing-per-day 2 --output $(DATA)/offline.parquet
	$(VENV)/bin/fraud train --input $(DATA)/offline.parquet --output $(DATA)/models/offline \
		--engine ray --rounds 150
	$(VENV)/bin/fraud evaluate --protocol model --model $(DATA)/models/offline \
		--data $(DATA)/offline.parquet --json $(DATA)/offline-eval.json

## The test suite (code, data and model behaviour).
test: setup
	$(PY) -m pytest

## Style and types: ruff, then mypy (strict on features/, policy/, actors/; pyproject.toml),
## then the console's ESLint and TypeScript check.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd console && npm run --silent lint && npm run --silent typecheck

## Retrain the committed default model (models/default) exactly as it was made.
model: setup
	$(VENV)/bin/fraud simulate --days 120 --seed 7 --card-testing-per-day 2 \
		--device-farms-per-day 1 --takeovers-per-day 2 --cross-border-per-day 2 \
		--output $(DATA)/train.parquet
	$(VENV)/bin/fraud train --input $(DATA)/train.parquet --output models/default --engine ray \
		--review-recall 0.9

## The handbook's two evaluation protocols against the book's published results.
evaluate: setup
	$(VENV)/bin/fraud evaluate --protocol handbook \
		--data ../shared/datasets/handbook/transactions.parquet --json $(DATA)/handbook-eval.json

## The service on the local default, throughput-optimized (Ctrl-C stops it and its Ray
## cluster). serve-fast is the same: the fast mode is the default.
serve serve-fast: setup
	@test -x /usr/sbin/haproxy || echo "no /usr/sbin/haproxy: Serve's own proxy is used (slower)"
	env $(FAST_ENV) $(VENV)/bin/serve run serve_config.yaml

bench: setup
	$(PY) -m benchmarks offline

## Baseline (one uvicorn process) vs the service, side by side.
bench-compare: setup
	$(PY) -m benchmarks compare --fast --stream 200000

bench-quick: setup
	$(PY) -m benchmarks offline --quick

clean:
	rm -rf $(DATA) .pytest_cache .ruff_cache
