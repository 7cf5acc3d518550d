# Fengqiao (枫桥). A newcomer needs two targets: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PROTOS := $(wildcard proto/fengqiao/v1/*.proto)
STUBS := fengqiao/v1/.generated
BUF := node_modules/.bin/buf
PREVIOUS_PROTOS := tests/fixtures/previous_release_proto
B ?=
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

.PHONY: install
install: $(INSTALLED) $(STUBS) ## create .venv with the pinned dependencies and generate the stubs

# Generated beside the package, then swapped in, so running processes never see it half-made.
$(STUBS): $(PROTOS) $(INSTALLED)
	rm -rf .stubs && mkdir -p .stubs
	$(PY) -m grpc_tools.protoc -Iproto --python_out=.stubs --grpc_python_out=.stubs \
	    --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=quiet:.stubs \
	    --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:.stubs \
	    $(PROTOS)
	touch .stubs/fengqiao/v1/__init__.py .stubs/fengqiao/v1/.generated
	rm -rf fengqiao/.v1-old && { [ ! -d fengqiao/v1 ] || mv fengqiao/v1 fengqiao/.v1-old; }
	mv .stubs/fengqiao/v1 fengqiao/v1 && rm -rf .stubs fengqiao/.v1-old

.PHONY: proto
proto: $(STUBS) ## generate the gRPC stub package fengqiao.v1 from proto/

.PHONY: run
run: install ## start a whole sample county on this machine (fengqiao demo)
	$(VENV)/bin/fengqiao demo $(ARGS)

.PHONY: test
test: install browser $(BUF) ## run every test (needs PostgreSQL at 127.0.0.1:5432)
	$(PY) -m pytest $(ARGS)

# The console's browser tests drive Debian's chromium (Playwright downloads no browser here);
# CJK fonts make its Chinese text render in screenshots.
.PHONY: browser
browser: ## install Debian's chromium and CJK fonts for the browser tests, when missing
	@command -v chromium >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q . || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; }

# ECharts, Swagger UI and ReDoc are pinned in package.json/package-lock.json and their built files
# committed under gateway/console/vendor/, so a fresh machine needs no npm; this re-fetches them.
.PHONY: console-assets
console-assets: ## re-fetch the pinned ECharts, Swagger UI and ReDoc (npm ci) into the console's vendor/ folder
	npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p gateway/console/vendor
	cp node_modules/echarts/dist/echarts.min.js gateway/console/vendor/echarts.min.js
	cp node_modules/echarts/LICENSE gateway/console/vendor/echarts.LICENSE
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	    gateway/console/vendor/
	cp node_modules/swagger-ui-dist/LICENSE gateway/console/vendor/swagger-ui.LICENSE
	cp node_modules/redoc/bundles/redoc.standalone.js gateway/console/vendor/redoc.standalone.js
	cp node_modules/redoc/LICENSE gateway/console/vendor/redoc.LICENSE

# buf checks the protobuf contract (buf.yaml); it is pinned in package.json/package-lock.json
# and comes from the npm registry (npm ci), with Debian's npm when there is none.
$(BUF): package.json package-lock.json
	@command -v npm >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm; }
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

# promtool checks the alert rules; it comes with Debian's prometheus package (the server is
# installed but not started).
.PHONY: promtool
promtool: ## install Debian's prometheus package (promtool) for make lint, when missing
	@command -v promtool >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

K8S_VERSION ?= 1.28.0
K8S_MANIFESTS = $(filter-out %/kustomization.yaml %/topology.yaml,$(wildcard deploy/rendered/k8s/*.yaml))

.PHONY: lint
lint: install promtool $(BUF) ## ruff, mypy, the import rules (lint-imports), the protobuf contract (buf), the alert rules (promtool), the rendered manifests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy fengqiao services host gateway devtools harness bench
	$(VENV)/bin/lint-imports
	$(BUF) lint
	$(BUF) breaking --against $(PREVIOUS_PROTOS)
	promtool check rules deploy/prometheus/fengqiao-alerts.yaml
	cd deploy/prometheus && promtool test rules fengqiao-alerts.test.yaml
	$(VENV)/bin/kubernetes-validate --strict --quiet --kubernetes-version $(K8S_VERSION) $(K8S_MANIFESTS)

.PHONY: fmt
fmt: install ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: bench
bench: install ## run the benchmarks (B=name for one) into bench/results/latest.jsonl
	$(PY) -m bench $(B)

SOAK_MINUTES ?= 10

.PHONY: soak
soak: install ## a year of a 5-town county in SOAK_MINUTES (10) under chaos, then checked (ARGS="--help")
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES) $(ARGS)

# The node image (Containerfile): Debian, non-root, the wheel and the pinned nats-server. Needs
# podman or docker and the base image from a registry; nothing else here builds or runs it.
CONTAINER ?= $(shell command -v podman || command -v docker)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: image
image: ## build the node image fengqiao:<version> from the Containerfile (needs podman or docker)
	@test -n "$(CONTAINER)" || { echo "make image needs podman or docker" >&2; exit 1; }
	$(CONTAINER) build -f Containerfile -t fengqiao:$(VERSION) .

.PHONY: clean
clean: ## remove the virtualenv, the stubs and demo state
	rm -rf $(VENV) fengqiao/v1 .fengqiao .pytest_cache .mypy_cache .ruff_cache
