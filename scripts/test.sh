#!/usr/bin/env bash
# The README's test command: sets up everything the tests need (system packages, models,
# a PostgreSQL server), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-packages.sh postgresql python3-venv
scripts/setup-models.sh

# A real PostgreSQL for the backend's tests (installed and started if needed).
if [ -x scripts/postgres.sh ]; then
  CLEANPLATE_TEST_POSTGRES_URL="$(scripts/postgres.sh)"
  export CLEANPLATE_TEST_POSTGRES_URL
fi

# The API contract test's tools (schemathesis, openapi-spec-validator, the generated client).
CLEANPLATE_TEST_TOOLS="$(scripts/test-tools.sh)"
export CLEANPLATE_TEST_TOOLS

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast "$@"
else
  cargo test --locked --workspace --no-fail-fast "$@"
fi
