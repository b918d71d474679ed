# EE-411 HW3 report. `make report` renders it from cache/, `make test` checks everything,
# `make results` recomputes what is missing. Every target creates/updates .venv first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv report submission results test bench mutate clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# torch/torchvision are pinned in pyproject.toml; pip takes them from the machine's local wheels
# where it has them, else from PyPI.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)  ## create or update .venv with the pinned dependencies

report: $(STAMP)  ## render the report from cache/ with Quarto (installs the tested quarto-cli into .venv if none is found)
	$(eval QUARTO_BIN := $$(shell $(PY) tools/find_quarto.py))
	$(if $(findstring no Quarto found,$(QUARTO_BIN)),$(error make report: $(QUARTO_BIN)))
	@QUARTO="$(QUARTO_BIN)" QUARTO_PYTHON=$(abspath $(PY)) $(PY) tools/render_quarto.py report.qmd

submission: report  ## the one file to hand in: _output/hw3-submission.zip (notebook, PDF, code/hw3, cache/)
	$(PY) tools/make_submission.py

results: $(STAMP)  ## compute every experiment missing from cache/ (needs the datasets; see README)
	$(PY) -m hw3 run

test: $(STAMP)  ## run the test suite (the report executes from cache/, in cache-only mode)
	$(PY) -m pytest

bench: $(STAMP)  ## our engine against the conventional DataLoader pipeline, fp32 against bf16, and the render
	$(PY) benchmarks/bench.py

mutate: $(STAMP)  ## mutation testing (mutmut, 1 worker) of the engine and selection logic; see README
	$(PY) tools/mutate.py

clean:  ## remove rendered outputs (keeps .venv and cache/)
	rm -rf _output .quarto report_files report.quarto_ipynb
