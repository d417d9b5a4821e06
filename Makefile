# The README's commands: `make run` (the bot; with no DISCORD_TOKEN, the local playground at
# http://127.0.0.1:8765) and `make test`. Both set up .venv/ first when needed.
# Any Python that pyproject.toml allows (3.11, 3.12, 3.13): `make test PYTHON=python3.12`.
# CI runs 3.11. After changing it, `make clean` first: an existing .venv/ is reused as it is.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test lint setup browser quality mutants clean

setup: $(STAMP)

# pip, not uv/poetry: only pip finds the torch wheels that lie on this machine's disk.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/doorways-bot

demo: $(STAMP)
	$(VENV)/bin/doorways entrance "heaven | hell" --vqgan tiny --clip tiny --size 256 128 --iterations 30 --seed 1 -o data/outputs/entrance.png

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The playground's browser test drives the system's Chromium (never a downloaded one):
# install it where that is possible (root with apt); without it that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null) || \
		echo "make: could not install chromium; the playground browser test will be skipped"; \
	else echo "make: no chromium (install it to run the playground browser test)"; fi

# Two pytest-xdist workers, a test file each at a time (module fixtures stay shared): about
# 1.5x faster on two cores. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: lint browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# What each Doorways technique does, measured in a toy world (docs/quality.md); not part of
# `make test` or CI: trains a toy CLIP and VQGAN once (about half a minute, kept in
# data/models/toy/), then paints about 50 small pictures: a few minutes on two cores.
quality: $(STAMP)
	$(VENV)/bin/doorways quality

# Mutation testing, not part of `make test` or CI: mutmut makes small edits ("mutants") to the
# loop, losses, cutouts, quota and scheduler ([tool.mutmut] in pyproject.toml) and runs their
# fast tests against each; a mutant that "survived" is a change no test noticed. Two to three
# hours on two busy cores; `$(VENV)/bin/mutmut run "bot.quota*"` does one module, `mutmut show
# NAME` one mutant (docs/development.md). Results are kept in mutants/, so a second plain run
# only redoes what changed.
mutants: $(STAMP)
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
