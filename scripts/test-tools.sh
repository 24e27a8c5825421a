#!/usr/bin/env bash
# Installs the tools the API contract test drives (backend/server/tests/contract.rs), from the
# package registries only, and prints the folder that holds them:
# - a Python virtual environment with schemathesis and openapi-spec-validator
#   (scripts/test-tools/requirements.txt, every version pinned);
# - the generated-client project's npm packages (tests/contract-client, package-lock.json),
#   which also hold axe-core for the web pages' browser tests (backend/server/tests/browser.rs).
# Quick when nothing changed: the environment is rebuilt only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
tools="$(cd "$target" && pwd)/test-tools"
req=scripts/test-tools/requirements.txt
stamp="$tools/requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [ ! -x "$tools/venv/bin/schemathesis" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "test-tools: installing schemathesis and openapi-spec-validator into $tools/venv" >&2
  rm -rf "$tools/venv"
  mkdir -p "$tools"
  python3 -m venv "$tools/venv" >&2
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi

client=tests/contract-client
if [ ! -x "$client/node_modules/.bin/tsc" ] || [ "$client/package-lock.json" -nt "$client/node_modules/.package-lock.json" ]; then
  echo "test-tools: installing the generated client's npm packages" >&2
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

echo "$tools"
