# The README's two commands: `make run` and `make test`. Both set up .venv/ first when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint setup clean

setup: $(STAMP)

# pip, not uv/poetry: only pip finds the torch wheels that lie on this machine's disk.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/doorways entrance "heaven | hell" --vqgan tiny --clip tiny --size 256 128 --iterations 30 --seed 1 -o data/outputs/entrance.png

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
