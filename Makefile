# pipemedic: every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Debian packages providing the real servers the tests and the demo run.
SYSTEM_BINARIES := prometheus:prometheus promtool:prometheus \
	prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
	prometheus-pushgateway:prometheus-pushgateway wrk:wrk \
	chromium:chromium initdb:postgresql

.PHONY: all venv system-deps test lint demo bench rules clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

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

test: venv system-deps lint
	$(BIN)/pipemedic rules diff
	$(BIN)/pytest -q

demo: venv system-deps
	$(BIN)/pipemedic demo

bench: venv system-deps
	$(BIN)/python -m bench

rules: venv
	$(BIN)/pipemedic rules generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
