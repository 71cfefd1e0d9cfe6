# minicosy — two set-up commands: `make demo` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.minicosy-installed

.PHONY: demo test lint install debian notebooks sync-notebooks corpus clean-venv benchmarks

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml scripts/install_python.sh scripts/install_debian.sh
	bash scripts/install_debian.sh
	bash scripts/install_python.sh $(PY)
	touch $(STAMP)

install: $(STAMP)

debian:
	bash scripts/install_debian.sh

# The project's main job: zero-shot synthesis with the committed checkpoints and data/fixtures prompts
# (no corpus build), offline and streaming; WAVs, a PNG and a JSON under out/demo/.
demo: $(STAMP)
	$(PY) -m minicosy demo

test: $(STAMP)
	$(PY) -m pytest -q

# The linter (ruff, configured in pyproject.toml); .ci/run runs it before the tests.
lint: $(STAMP)
	$(PY) -m ruff check minicosy tests benchmarks scripts

# The py:percent twins (notebooks/NN_name.py) are the notebooks' source: sync-notebooks writes their cells into
# the .ipynb (outputs kept, nothing executed); notebooks syncs, then executes every notebook in place
# (outputs and execution counts kept).
sync-notebooks: $(STAMP)
	$(PY) -m jupytext --update --to ipynb notebooks/*.py

notebooks: sync-notebooks
	$(PY) scripts/nbrun.py notebooks/*.ipynb

corpus: $(STAMP)
	$(PY) -m minicosy data build

benchmarks: $(STAMP)
	$(PY) benchmarks/import_time.py
	$(PY) benchmarks/frontend.py
	$(PY) benchmarks/speech_tokenizer.py
	$(PY) benchmarks/vocoder.py
	$(PY) benchmarks/lm.py --out results/bench_lm.json
	$(PY) benchmarks/flow_streaming.py --out results/bench_flow_streaming.json
	$(PY) benchmarks/streaming.py --out results/bench_streaming.json

clean-venv:
	rm -rf $(VENV)
