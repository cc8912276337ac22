# `make test` and `make demo` each create .venv and install everything on a fresh machine.
# pyproject.toml keeps version *ranges*; the pins below are this machine's set-up step only
# (torch 2.14.1 / torchvision 0.29.1 install from local disk with pip on Python 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE := 1

.PHONY: install test test-all demo lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[dev,datasets,hf]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

demo: $(STAMP)
	$(VENV)/bin/starft demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: $(STAMP)
	$(PY) bench/step_time.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
