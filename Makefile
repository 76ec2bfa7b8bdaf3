# One command each for everyone: developers and CI run the same targets.
.PHONY: demo test setup setup-test build lint typecheck pytest bench clean

PY := .venv/bin/python

demo: setup
	$(PY) -m sitepulse demo

test: setup-test lint typecheck pytest

setup:
	@scripts/setup.sh core

setup-test:
	@scripts/setup.sh test

build:
	npm run build

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck:
	.venv/bin/mypy

pytest:
	$(PY) -m pytest -q

bench: setup-test
	$(PY) bench/ingest.py
	$(PY) bench/storage.py
	$(PY) -m bench.analyses
	$(PY) -m bench.dashboards

clean:
	rm -rf .venv node_modules src/sitepulse/collect/static/sp.js .setup-stamp-* test-artifacts
