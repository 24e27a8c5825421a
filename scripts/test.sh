#!/usr/bin/env bash
# The README's test command: sets up everything the tests need (system packages, models,
# a PostgreSQL server), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-packages.sh postgresql
scripts/setup-models.sh

# A real PostgreSQL for the backend's tests (installed and started if needed).
if [ -x scripts/postgres.sh ]; then
  CLEANPLATE_TEST_POSTGRES_URL="$(scripts/postgres.sh)"
  export CLEANPLATE_TEST_POSTGRES_URL
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast "$@"
else
  cargo test --locked --workspace --no-fail-fast "$@"
fi
