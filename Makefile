# Privastead task runner: people and CI use the same targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
PYTHON  ?= $(shell scripts/find-python.sh)
CARGO   ?= cargo
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Numba's on-disk kernel cache lives in the tree, not in $HOME (read-only HOMEs exist).
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

RUST_SRC := $(shell find rust_ext -name '*.rs' -o -name Cargo.toml) Cargo.toml Cargo.lock

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: system-deps
system-deps: ## Install system packages (apt) and a Rust toolchain if missing
	scripts/system-deps.sh

$(VENV)/.created: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "maturin>=1.14,<2.0"
	touch $@

# maturin develop installs the package (editable) with its runtime and dev dependencies.
$(VENV)/.built: $(VENV)/.created $(RUST_SRC) pyproject.toml
	. $(VENV)/bin/activate && maturin develop --release --extras dev
	touch $@

.PHONY: venv
venv: system-deps $(VENV)/.built ## Create .venv with everything installed and the extension built (release)

.PHONY: build
build: venv ## Rebuild the Rust extension in release mode into .venv
	. $(VENV)/bin/activate && maturin develop --release --extras dev --skip-install

.PHONY: format
format: venv ## Format Python and Rust sources
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench
	$(CARGO) fmt --all

.PHONY: lint-python
lint-python: venv ## ruff, mypy --strict, and stubtest of the extension's .pyi
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m mypy.stubtest privastead._native --allowlist scripts/stubtest-allowlist.txt

.PHONY: lint-rust
lint-rust: system-deps ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: lint
lint: lint-python lint-rust ## All linters

.PHONY: test-rust
# The dev profile optimises every dependency (Cargo.toml), so crypto runs at full speed while
# our own crates skip the slow LTO link of the release profile.
test-rust: system-deps ## Rust unit and integration tests (core + state file, incl. mls-rs interop)
	$(CARGO) test --workspace --exclude privastead-native

.PHONY: test-python
test-python: venv ## pytest
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

.PHONY: test
test: garage-background venv test-rust lint test-python ## Set everything up from nothing, then run cargo test, linters and pytest

# Garage (the S3 store of the cluster tests) is built from crates.io once per machine, which
# takes tens of minutes: the build starts here, in the background at the lowest CPU priority,
# and only the tests marked `garage` (run last) wait for it.
.PHONY: garage-background
garage-background: system-deps
	scripts/garage.sh background

.PHONY: garage
garage: system-deps ## Build the pinned Garage once per machine (~/.cache/privastead); prints its path
	scripts/garage.sh build

.PHONY: cluster
cluster: venv garage ## Run PostgreSQL, a 3-node Garage, 3 relays and HAProxy on loopback (Ctrl-C stops)
	$(VENV)/bin/python -m privastead.devcluster

.PHONY: wheel
wheel: venv ## Build an abi3 manylinux wheel (glibc <= 2.28) into dist/
	. $(VENV)/bin/activate && maturin build --release --zig --compatibility manylinux_2_28 --out dist

.PHONY: wheel-check
wheel-check: wheel ## Install the wheel into a fresh venv and import it
	scripts/check-wheel.sh $(PYTHON)

.PHONY: demo
demo: venv ## Set up, then run relay, camera, hub and a paired client with its web UI (Ctrl-C stops)
	$(VENV)/bin/python -m privastead.demo

.PHONY: bench
bench: venv ## Run the benchmark suite (prints tables and JSON lines)
	$(VENV)/bin/python bench/run_all.py

.PHONY: clean
clean: ## Remove build outputs (keeps .venv)
	rm -rf target dist build .pytest_cache .mypy_cache .ruff_cache .cache
