# tinyllm — the two commands a reader needs are `make book` and `make test`.
# Both create the virtual environment and install everything on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# wheels of the course's install, for the Colab-like test's fresh environment: it installs offline from them
WHEELS := $(VENV)/wheels
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# The book is executed, and tested, on two CPU threads, as in CI; a reader's machine uses all of its own.
BOOK_ENV := OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
CHAPTER_FILES := $(wildcard chapters/[0-9][0-9]_*.ipynb)

.PHONY: setup browser test test-fast book export execute assignments diagrams reference bench clean

setup: $(STAMP) $(WHEELS)/.built

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

# what a Colab runtime would download (torch, a kernel, the course's dependencies, the build tool), pinned
# as in requirements.txt: mostly from pip's cache of the install above
$(WHEELS)/.built: $(STAMP)
	rm -rf $(WHEELS)
	$(PY) -m pip wheel --quiet --wheel-dir $(WHEELS) -c requirements.txt ipykernel "setuptools>=77" ".[course]"
	rm -f $(WHEELS)/tinyllm-*.whl   # the test installs the course from its source, as Colab does
	touch $@

## Debian's Chromium for the browser test of the book (needs root or sudo; once per machine)
browser:
	command -v chromium >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

## unit tests, the library-chapters sync check, every chapter under nbval, the book in a browser, a Colab-like run.
## Chapters start as in a fresh Colab runtime: with no runs of their own (TINYLLM_RUNS is an empty folder).
test: setup
	@$(BOOK_ENV) $(PY) -c "from tinyllm.train import matmul_gflops; print(f'this machine, on 2 threads: {matmul_gflops():.0f} GFLOP/s on a large float32 matrix product')"
	rm -rf _build/test/runs && mkdir -p _build/test/runs
	$(BOOK_ENV) TINYLLM_RUNS=$(CURDIR)/_build/test/runs TINYLLM_WHEELS=$(CURDIR)/$(WHEELS) \
		$(PY) -m pytest tests chapters $(NBVAL) --durations=20

## the unit tests alone, without what is marked slow (under 2 minutes)
test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" -q

## the online book, from the outputs stored in the chapters (open _build/html/index.html)
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

## write tinyllm/*.py from the chapters' `#| export` cells
export: $(STAMP)
	$(PY) tools/export.py

## re-run every chapter in place on a clean kernel and store its outputs, printing each one's time. Each
## starts as in a fresh Colab runtime, with an empty runs folder of its own, so chapters 6 to 9 show the
## reference run. `make execute CHAPTERS="chapters/05_training.ipynb"` runs some of them.
## The stored outputs are a CPU's (CUDA_VISIBLE_DEVICES hides a GPU): chapter 5 trains the `cpu` preset, as the text says.
CHAPTERS ?= $(CHAPTER_FILES)
execute: $(STAMP)
	@for chapter in $(CHAPTERS); do \
		runs=_build/execute/$$(basename $$chapter .ipynb)/runs; rm -rf $$runs; mkdir -p $$runs; \
		start=$$(date +%s); \
		$(BOOK_ENV) CUDA_VISIBLE_DEVICES= TINYLLM_RUNS=$(CURDIR)/$$runs $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False $$chapter \
			|| { echo "$$chapter failed"; exit 1; }; \
		echo "$$chapter: $$(( $$(date +%s) - start )) s"; \
	done

## student versions of every chapter, solutions replaced by placeholders, in assignments/ (commit them)
assignments: $(STAMP)
	$(PY) tools/assignments.py

## the book's diagrams, drawn by code (book/diagrams.py), as PNGs in tinyllm/images/ (package data: commit them)
diagrams: $(STAMP)
	$(PY) book/diagrams.py

## retrain the cpu-preset reference runs shipped in tinyllm/reference/ (Finn and Mochi: about 5 minutes on two cores;
## commit them; the 8M Finn, finn-t4, only by name: `python tools/reference.py finn-t4`, minutes on a GPU),
## profile a cpu step (a few minutes) and measure the cpu recipe's curve of in-character rate against time (about 40 more)
reference: $(STAMP)
	$(BOOK_ENV) $(PY) tools/reference.py
	$(BOOK_ENV) $(PY) benchmarks/train_step.py --write
	$(BOOK_ENV) $(PY) benchmarks/cpu_curve.py

## speed against the design's budgets, with baselines measured in the same run
bench: $(STAMP)
	$(PY) benchmarks/data.py
	$(PY) benchmarks/tokenizer.py
	$(PY) benchmarks/attention.py
	$(PY) benchmarks/train_throughput.py
	$(BOOK_ENV) $(PY) benchmarks/train_step.py
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/sample_replies.py
	$(PY) benchmarks/export.py

clean:
	rm -rf _build
