# pipemedic: every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# dbt-ol and dbt-duckdb for tests/exporters/test_openlineage_dbt.py, in their own environment:
# dbt-core pins pathspec<0.13, which the dev extra's mypy cannot import (pyproject.toml, extra dbt)
DBT_VENV := .venv-dbt
DBT_STAMP := $(DBT_VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Debian packages providing the real servers the tests and the demo run.
SYSTEM_BINARIES := prometheus:prometheus promtool:prometheus \
	prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
	prometheus-pushgateway:prometheus-pushgateway wrk:wrk \
	chromium:chromium initdb:postgresql

.PHONY: all venv dbt-venv system-deps test lint demo bench rules clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(DBT_STAMP): pyproject.toml
	test -x $(DBT_VENV)/bin/python || $(PY) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/python -c "import subprocess, sys, tomllib; \
	deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['dbt']; \
	subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet', \
	  '--disable-pip-version-check', *deps])"
	touch $(DBT_STAMP)

dbt-venv: $(DBT_STAMP)

system-deps:
	@missing=""; \
	for pair in $(SYSTEM_BINARIES); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/lib/postgresql/*/bin/$$bin ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff check pipemedic receiver rules exporters tests bench
	$(BIN)/mypy pipemedic receiver rules exporters

test: venv dbt-venv system-deps lint
	$(BIN)/pipemedic rules diff
	$(BIN)/pytest -q

demo: venv system-deps
	$(BIN)/pipemedic demo

bench: venv system-deps
	$(BIN)/python -m bench

rules: venv
	$(BIN)/pipemedic rules generate

clean:
	rm -rf $(VENV) $(DBT_VENV) .pytest_cache .mypy_cache .ruff_cache
