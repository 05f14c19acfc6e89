# The README's two commands. Both work on a fresh Debian machine with Python 3.11 and Node 20.
#   make synth   install the runtime dependencies, then `cdk8s synth` into dist/
#   make test    install the test tools too, then run every test (pytest: also mypy and ruff)
#   make review  what this branch's dist/ change does to a live cluster (docs/review.md)
# And, on every edit:
#   make test-fast  the fast tier: no real process, no root (pytest -m "not real"; harness/tiers.py)
# And, for maintainers:
#   make imports regenerate imports/ (the CRD bindings) from local CRD files, offline

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SCAN_VENV := .venv-checkov
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# Debian packages the tests run for real: promtool and Prometheus, redis_exporter,
# redis-benchmark (bench/), shellcheck, haproxy (the primary endpoint).
APT_PACKAGES := prometheus prometheus-redis-exporter redis-tools shellcheck haproxy
APT_BINARIES := promtool prometheus prometheus-redis-exporter redis-benchmark shellcheck haproxy

# CRD bindings: one `module:=file` pair per CRD, the file read from CRDS_DIR. Each module is
# written to IMPORTS_DIR/<module>; the package sees imports/ through the symlink
# constructs/cdk8s_valkey/_imports. cdk8s.yaml lists the same CRDs by upstream address, for
# `npx cdk8s import` with internet. tests/test_imports.py checks that this reproduces imports/.
CRDS_DIR ?= ../shared/crds
IMPORTS_DIR ?= imports
CRD_IMPORTS := \
	cdk8s_valkey_longhorn:=longhorn.io_recurringjobs.yaml

.PHONY: synth review test test-fast deps dev-deps system-deps bench imports

# The cdk8s CLI deletes its output directory before it runs the app. So synth writes a new
# directory and puts it in place of dist/ only on success: a refused or failed synth leaves dist/
# as it was. main.py's claim guard reads the previous dist/ from CDK8S_VALKEY_DIST.
synth: deps
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	CDK8S_VALKEY_DIST=dist npx --no-install cdk8s synth --no-check-upgrade --output "$$out/dist" && \
	rm -rf dist && mv "$$out/dist" dist && ls dist/*.k8s.yaml

# The review of a pull request (docs/review.md): dist/ of the work tree against dist/ where the
# branch left BASE (git merge-base). Prints the verdict; fails only when the tool cannot compare.
BASE ?= $(shell git rev-parse --verify -q origin/main >/dev/null 2>&1 && echo origin/main || echo main)
review: deps
	@status=0; $(VENV)/bin/python -m cdk8s_valkey review --base "$(BASE)" dist || status=$$?; \
	[ $$status -le 2 ] || exit $$status

test: dev-deps system-deps
	$(VENV)/bin/python -m pytest

test-fast: dev-deps
	$(VENV)/bin/python -m pytest -m "not real" -q

bench: dev-deps system-deps
	$(VENV)/bin/python -m bench

# Uses the installed cdk8s CLI and never installs one: `npm ci` empties node_modules first,
# which is shared (symlinked) in some checkouts. One `cdk8s import` per CRD: the CLI imports
# only the first spec it is given. Each module directory is removed first, so no file of an
# older import survives.
imports:
	@test -x node_modules/.bin/cdk8s || { echo "node_modules/.bin/cdk8s is missing: run make deps first" >&2; exit 1; }
	@test -d "$(CRDS_DIR)" || { echo "CRDS_DIR=$(CRDS_DIR) is not a directory: point it at the CRD files (make imports CRDS_DIR=...)" >&2; exit 1; }
	@set -e; for pair in $(CRD_IMPORTS); do \
	  module=$${pair%%:=*}; file=$(CRDS_DIR)/$${pair#*:=}; \
	  test -f "$$file" || { echo "$$file: not found (CRDS_DIR=$(CRDS_DIR))" >&2; exit 1; }; \
	  echo "cdk8s import $$module:=$$file -> $(IMPORTS_DIR)/$$module"; \
	  rm -rf "$(IMPORTS_DIR)/$$module"; \
	  npx --no-install cdk8s import --no-save --no-check-upgrade --language python \
	    --output "$(IMPORTS_DIR)" "$$module:=$$file" >/dev/null; \
	done

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
