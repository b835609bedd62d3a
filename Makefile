# Shopbridge: `make help` lists the targets. CI runs `make test` (through .ci/run), exactly as a person does.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
INFRA := deploy/local/infra.sh
# Exports NATS_URL and DATABASE_URL for the servers `make infra` runs (or the ones you pointed it at).
WITH_INFRA := eval "$$($(INFRA) env)" &&
CARGO ?= cargo
ONLY ?=
# Each test process writes the log lines that look like a secret here; `make test` fails if any exist.
LEAKS_DIR := $(CURDIR)/target/test-leaks

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: infra infra-fast infra-down infra-purge infra-status
infra: ## Start NATS 2.15 (JetStream) and PostgreSQL on loopback, installing what is missing (idempotent)
	$(INFRA) up
infra-fast: ## Like infra, with PostgreSQL's fsync off (tests only)
	SHOPBRIDGE_PG_FAST=1 $(INFRA) up
infra-down: ## Stop what `make infra` started, and only that
	$(INFRA) down
infra-purge: ## Stop it and delete its data
	$(INFRA) down --purge
infra-status: ## Show what runs, and where
	$(INFRA) status

.PHONY: topology
topology: ## Apply the JetStream topology in deploy/nats/topology.yaml (idempotent)
	$(CARGO) build --bin shopbridge-nats-topology
	$(WITH_INFRA) target/debug/shopbridge-nats-topology apply --file deploy/nats/topology.yaml

.PHONY: build
build: ## Build every binary
	$(CARGO) build --workspace --bins

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: lint
lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: infra-fast topology lint build ## Everything CI checks: infra, topology, lint, all tests, chart validation
	rm -rf $(LEAKS_DIR)
	$(WITH_INFRA) SHOPBRIDGE_TEST_LEAKS_DIR=$(LEAKS_DIR) $(CARGO) nextest run --workspace --no-fail-fast
	@if compgen -G '$(LEAKS_DIR)/*.log' >/dev/null; then \
	  echo "Secrets in the test suite's logs (file per test process, [test thread] line):" >&2; \
	  cat $(LEAKS_DIR)/*.log | cut -c1-400 >&2; exit 1; \
	else echo "log scan: no token or secret in the test suite's logs"; fi
	deploy/k8s-tests/run.sh
	deploy/local/demo-check.sh

.PHONY: helm-test helm-sync-topology images
helm-test: ## Validate the Helm chart and Dockerfile offline (lint, render, kubernetes-validate 1.30/1.32, schema, security, config keys)
	deploy/k8s-tests/run.sh
helm-sync-topology: ## Copy deploy/nats/topology.yaml into the Helm chart (run after editing the topology)
	cp deploy/nats/topology.yaml helm/shopbridge/files/topology.yaml
IMAGE_REGISTRY ?= localhost/shopbridge
IMAGE_TAG ?= dev
images: ## Build the container images (needs Docker with BuildKit; none runs on our machines)
	for t in auth listings orders gateway scheduler nats-topology; do \
	  docker build -f deploy/docker/Dockerfile --target $$t -t $(IMAGE_REGISTRY)/shopbridge-$$t:$(IMAGE_TAG) . ; done

.PHONY: demo up down status run
demo: build ## The main job: start everything, connect the demo store by OAuth, import its listings, print a summary
	deploy/local/demo.sh
up: build ## Start the whole local system in the background (infra, simulator with a demo store, five services)
	deploy/local/system.sh up
down: ## Stop what `make up` / `make demo` started (logs stay in .local/system/logs)
	deploy/local/system.sh down
status: ## What of the local system runs
	deploy/local/system.sh status
run: infra topology build ## Run all five services in the foreground against local infra, logs prefixed by service
	$(WITH_INFRA) deploy/local/run-services.sh

.PHONY: bench
bench: infra ## Run every benchmark, or one: make bench ONLY=<name>; figures in target/bench/<name>.json
	$(WITH_INFRA) deploy/local/bench.sh $(ONLY)
