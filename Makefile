# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test test-slow venv clean

# The Triton tests' server is the tritonserver binary inside the nvidia-pytriton wheel, installed
# without deps (it pins numpy<2); its Python-backend stub needs NumPy 1, kept apart in
# $(VENV)/triton-python (ard_edge/deploy/triton_server.py).
$(BIN)/ard-edge: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps 'nvidia-pytriton==0.7.0'
	$(BIN)/pip install --quiet --no-deps --upgrade --target $(VENV)/triton-python 'numpy<2'
	touch $@

venv: $(BIN)/ard-edge

test: $(BIN)/ard-edge
	$(BIN)/python scripts/fetch_tlsimu.py --quiet || true
	$(BIN)/python -m pytest -q

test-slow: $(BIN)/ard-edge
	$(BIN)/python -m pytest -q -m slow

demo: $(BIN)/ard-edge
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh $(DEMO)

clean:
	rm -rf $(DEMO) .pytest_cache
