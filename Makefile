# Switchyard: the README's two commands (`make run`, `make test`) and the helpers behind them.
# Everything is idempotent: running a target again reuses the venv, .env, database and users.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k encryption -x"`.
PYTEST_ARGS ?=

# Steps depend on each other's side effects (venv, .env, database): never run them in parallel.
.NOTPARALLEL:

.PHONY: help run test lint format setup serve venv venv-dev migrate static bootstrap clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: setup ## Set everything up on first use, then serve on 127.0.0.1:8000 with the task worker
	@scripts/run.sh

test: venv-dev ## Run the whole test suite
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then \
	  echo "make test: pytest collected no tests (exit 5); that is a failure, not a pass." >&2; \
	fi; \
	exit $$rc

lint: venv-dev ## ruff (lint, format), import contracts, mypy, migrations up to date
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy
	DJANGO_SETTINGS_MODULE=config.settings_test $(MANAGE) makemigrations --check --dry-run

format: venv-dev ## ruff: fix what can be fixed and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

setup: venv .env migrate static bootstrap ## venv, .env, migrations, static files, first users

serve: ## Serve with granian (ASGI) and the db_worker beside it (see scripts/run.sh for settings)
	@scripts/run.sh

venv: ## The virtual environment with requirements.txt
	@scripts/ensure-venv.sh runtime

venv-dev: ## The virtual environment with requirements-dev.txt (tests, ruff)
	@scripts/ensure-venv.sh dev

# A file target: made only while .env is missing, so an existing one is never touched.
.env: | venv
	@$(PY) scripts/write_env.py $@

migrate: venv .env
	@$(MANAGE) migrate --noinput

static: venv .env
	@$(MANAGE) collectstatic --noinput --verbosity 0

bootstrap: venv .env migrate ## First run only: an admin user and a demo tenant with an API key
	@$(MANAGE) bootstrap_local

clean: ## Remove the venv and collected static files (keeps .env and the database)
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache .mypy_cache


.PHONY: check-package
check-package: venv-dev ## Build the wheel, install it into a fresh project as the README says (SQLite)
	@scripts/check-package.sh $(CHECK_PACKAGE_ARGS)

.PHONY: test-e2e
test-e2e: venv-dev ## The local provider against a real llama-server + Gemma 3 270M (not in CI)
	@scripts/e2e.sh $(PYTEST_ARGS)
