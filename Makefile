# tinyllm — the two commands a reader needs are `make book` and `make test`.
# Both create the virtual environment and install everything on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: setup browser test book export execute assignments bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

## Debian's Chromium for the browser test of the book (needs root or sudo; once per machine)
browser:
	command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

## unit tests, the library-chapters sync check, and every chapter under nbval
test: $(STAMP)
	$(PY) -m pytest tests chapters $(NBVAL)

## the online book, from the outputs stored in the chapters (open _build/html/index.html)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

## write tinyllm/*.py from the chapters' `#| export` cells
export: $(STAMP)
	$(PY) tools/export.py

## re-run every chapter in place on a clean kernel and store its outputs
execute: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False \
		chapters/[0-9][0-9]_*.ipynb

## student versions of every chapter, solutions replaced by placeholders, in _build/assignments/
assignments: $(STAMP)
	$(PY) tools/assignments.py

## speed against the design's budgets, with baselines measured in the same run
bench: $(STAMP)
	$(PY) benchmarks/data.py
	$(PY) benchmarks/tokenizer.py
	$(PY) benchmarks/attention.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/generate.py

clean:
	rm -rf _build
