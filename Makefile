# surveyhub: `make up` runs the platform on the embedded default, `make test` passes the tests.
# Both install what is missing first (a virtualenv in .venv with the locked-in-spirit requirements of
# pyproject.toml), so they work from a fresh clone with only the package registries reachable.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: up test lint format bench bench-deps install system-deps clean

# Debian packages the tests use: STILTS (votlint, taplint) to validate what the archive serves.
DEBIAN_PACKAGES := stilts

install: $(STAMP)

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	  else \
	    echo "surveyhub's tests need Debian packages:$$missing. Run as root:"; \
	    echo "  apt-get update && apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "surveyhub needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/surveyhub up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint system-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

bench: $(STAMP) bench-deps
	$(BIN)/python -m bench

clean:
	rm -rf build dist .pytest_cache .ruff_cache test-artifacts

# The archive benchmark compares with PostgreSQL 15 + q3c (Debian packages), installed here when root.
bench-deps:
	@if [ ! -f /usr/share/postgresql/15/extension/q3c.control ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-15-q3c >/dev/null; \
	  else \
	    echo "make bench needs: apt-get update && apt-get install -y postgresql-15 postgresql-15-q3c"; exit 1; \
	  fi; \
	fi
