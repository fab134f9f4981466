# surveyhub: `make up` runs the platform on the embedded default, `make test` passes the tests.
# Both install what is missing first (a virtualenv in .venv with the locked-in-spirit requirements of
# pyproject.toml), so they work from a fresh clone with only the package registries reachable.

# When root, the hub runs each user's server as an unprivileged account, which must be able to run the
# interpreter: pyenv's lives under /root (mode 0700), so as root we build on Debian's /usr/bin/python3.
PYTHON ?= $(shell if [ "$$(id -u)" = 0 ] && /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo /usr/bin/python3; else echo python3; fi)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The versions every environment installs (tests, images/lab, images/hub): `make lock` writes it.
LOCK := images/requirements.lock
# configurable-http-proxy (npm), JupyterHub's proxy, installed beside the virtualenv.
CHP := $(VENV)/node/node_modules/.bin/configurable-http-proxy
PYTEST_WORKERS ?= 2

.PHONY: up test lint format bench bench-deps install system-deps clean lock reachable node

# Debian packages the tests use: STILTS (votlint, taplint) to validate what the archive serves; Chromium for
# the JupyterLab panel's browser test (Playwright drives /usr/bin/chromium; its own browser download fails here).
DEBIAN_PACKAGES := stilts chromium

install: $(STAMP) $(CHP) reachable

# As root, users' servers run as their own accounts and must reach this checkout (its virtualenv and its
# sources): a parent folder without the search bit for others (say /root, 0700) gets it, and only it.
reachable:
	@if [ "$$(id -u)" = 0 ]; then \
	  d="$(CURDIR)"; while [ "$$d" != "/" ]; do \
	    if [ "$$(( $$(stat -c '%a' "$$d" | sed 's/.*\(.\)$$/\1/') & 1 ))" = 0 ]; then \
	      echo "making $$d searchable by other accounts (chmod o+x) so users' servers can run the platform"; \
	      chmod o+x "$$d"; fi; \
	    d="$$(dirname "$$d")"; done; \
	fi

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

$(STAMP): pyproject.toml extensions/surveyhub-lab/pyproject.toml $(LOCK) | node
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "surveyhub needs Python 3.11 or newer")'
	@# a virtualenv built on another interpreter (say pyenv's, before this rule) is rebuilt
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python -c 'import sys; print(sys.base_prefix)')" != "$$($(PYTHON) -c 'import sys; print(sys.base_prefix)')" ]; then \
	  echo "rebuilding $(VENV) on $(PYTHON)"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[test,kubernetes]'
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e extensions/surveyhub-lab
	touch $(STAMP)

# Node.js: configurable-http-proxy, and the JupyterLab extension's build (pip install runs jlpm).
node:
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	  else \
	    echo "surveyhub needs Node.js (configurable-http-proxy, the JupyterLab extension). Run as root:"; \
	    echo "  apt-get update && apt-get install -y nodejs npm"; exit 1; \
	  fi; \
	fi

$(CHP): | $(STAMP)
	npm install --prefix $(VENV)/node --no-audit --no-fund --silent configurable-http-proxy@5

# Writes the lock from the current environment; commit it with the change to pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^surveyhub' > $(LOCK)

up: install
	$(BIN)/surveyhub up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint system-deps
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
