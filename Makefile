# Everything a fresh machine needs (python3 with pip and venv) goes through these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint format test demo train-demo all clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so the project's torch requirement is already met
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,plots]'

install: $(BIN)/activate

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports  # the one-way layering ([tool.importlinter] in pyproject.toml)
	$(BIN)/mypy amsrm amsrm_core producers streams

format: install
	$(BIN)/ruff check --fix .

# The whole suite on Apache Kafka, then every test that uses the broker fixture once more on the
# embedded Tansu broker (the demo's engine); tests/conftest.py prints the engine in pytest's header.
test: install lint
	AMSRM_TEST_BROKER=kafka $(BIN)/python -m pytest
	AMSRM_TEST_BROKER=tansu $(BIN)/python -m pytest -m broker

demo: install
	$(BIN)/amsrm demo

train-demo: install
	$(BIN)/amsrm train --dataset synthetic --epochs 20 --patience 5

all: test

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
