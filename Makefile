# The README's two commands. Both work on a fresh Debian machine with Python 3.11 and Node 20.
#   make synth   install the runtime dependencies, then `cdk8s synth` into dist/
#   make test    install the test tools too, then run every test (pytest: also mypy and ruff)

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SCAN_VENV := .venv-checkov
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Debian packages the tests run for real: promtool and Prometheus, redis_exporter,
# redis-benchmark (bench/), shellcheck.
APT_PACKAGES := prometheus prometheus-redis-exporter redis-tools shellcheck
APT_BINARIES := promtool prometheus prometheus-redis-exporter redis-benchmark shellcheck

.PHONY: synth test deps dev-deps system-deps bench

synth: deps
	npx --no-install cdk8s synth --no-check-upgrade

test: dev-deps system-deps
	$(VENV)/bin/python -m pytest

bench: dev-deps system-deps
	$(VENV)/bin/python -m bench

deps: $(VENV)/.deps node_modules/.package-lock.json

dev-deps: deps $(VENV)/.dev-deps $(SCAN_VENV)/.deps

$(VENV)/.deps: requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt $(VENV)/.deps
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(SCAN_VENV)/.deps: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

system-deps:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(APT_PACKAGES)"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
