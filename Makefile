# The two commands: `make demo` and `make test`. Each sets itself up first.
.PHONY: setup demo test lint typecheck layers unit bench clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup lint typecheck layers unit

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

unit:
	$(BIN)/pytest tests

# Benchmarks are not part of `make test` (rule: tests assert behaviour, never time).
# bench/run.sh installs network-config-analyzer in its own venv and takes ~20 minutes.
bench: setup
	$(BIN)/python bench/scale_controller.py
	$(BIN)/python bench/flows_per_rule.py
	$(BIN)/python bench/apiserver_watch.py
	$(BIN)/python bench/cni_add.py
	$(BIN)/python bench/multinode.py
	$(BIN)/python bench/policy_latency.py
	$(BIN)/python bench/controller_spans.py
	$(BIN)/python bench/realize_10k.py
	$(BIN)/python bench/iperf_rules.py
	bash bench/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
