# Two commands a fresh clone needs: `make demo` and `make test`. Nothing to install by hand:
# the virtualenv, the dependencies and ffmpeg (imageio-ffmpeg ships the binary) come from here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_PRODUCT ?= Lumen — a smart desk lamp that follows your circadian rhythm, dims itself at night and charges your phone
# A brand kit for the demo ad, e.g. `make demo DEMO_BRAND=examples/brand.toml`; empty: no kit.
DEMO_BRAND ?=

.PHONY: demo test lint bench clean install dev

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Jant needs Python 3.11 or newer (found %s). Set PYTHON=python3.11." % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setuptools prints an "Editable installation" notice (a Python warning) for every editable install of
# a project laid out like this one; it says nothing a new user can act on, so it is filtered out.
EDITABLE_QUIET := PYTHONWARNINGS="ignore:Editable installation"

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(EDITABLE_QUIET) $(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(EDITABLE_QUIET) $(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# The offline voice (GPL, so an extra); an ad without it still has captions and music.
$(VENV)/.installed-voice: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[voice]' || echo "Could not install the offline voice (jant[voice]): ads will have no voiceover offline."
	@touch $@

# What `make test` needs, the dev tools and the offline voice, in one pip run: one resolve and one
# editable build instead of three (a fresh clone's CI installs ~25 % faster). It counts as the three
# installs above; without the voice the tests that need it are skipped.
$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(EDITABLE_QUIET) $(BIN)/pip install --quiet -e '.[dev,voice]' || { \
		echo "Could not install the offline voice (jant[voice]): the tests that need it are skipped."; \
		$(EDITABLE_QUIET) $(BIN)/pip install --quiet -e '.[dev]'; }
	@touch $(VENV)/.installed $(VENV)/.installed-dev $(VENV)/.installed-voice $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed $(VENV)/.installed-voice
	$(BIN)/jant makead "$(DEMO_PRODUCT)" --mood tech --audience "remote workers" --cta "Order at lumen.example" --yes$(if $(strip $(DEMO_BRAND)), --brand "$(DEMO_BRAND)")

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check bot pipeline storage tests benchmarks
	$(BIN)/ruff format --check bot pipeline storage tests benchmarks
	$(BIN)/mypy

test: $(VENV)/.installed-test
	@$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q -n 2

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
