# The README's commands. `make run` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RAG := $(VENV)/bin/rag
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: setup model index run test test-fast lint eval bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU build is on disk; an unpinned torch pulls gigabytes of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[app,llm,eval,dev]"
	touch $(STAMP)

setup: $(STAMP)
	# A CJK font: pdfium reads Chinese PDFs whose fonts are not embedded through one.
	bash scripts/install-fonts.sh

model: setup  ## convert the bundled multilingual-e5-small once into the cache
	$(RAG) model

index: model
	$(RAG) index --docs docs --index index

run: index
	$(VENV)/bin/python app.py --index index --docs docs --host $(HOST) --port $(PORT)

test: setup
	bash scripts/install-browser.sh
	$(VENV)/bin/python -m pytest -q -m "slow or not slow" -p no:cacheprovider

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

eval: index
	$(RAG) eval --gold eval/gold.jsonl --index index --out eval/out

bench: index
	$(VENV)/bin/python -m bench.run --out bench/out

clean:
	rm -rf $(VENV) index test-output eval/out bench/out
