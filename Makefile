# Two commands: `make demo` and `make test`. Both create .venv when absent.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= demo_out
MINUTES ?= 3

.PHONY: demo test install install-dev clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/skd demo --out $(OUT) --minutes $(MINUTES) $(if $(wildcard weights/judge-shapes/judge.pt),--judge weights/judge-shapes)

test: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info src/*.egg-info
