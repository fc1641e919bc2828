#!/usr/bin/env bash
# The project's checks, as CI runs them: lint, types, then the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k token -x).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q "$@"
