#!/usr/bin/env bash
# Fetches, verifies and converts the face models into models/dist (see models/sources.toml).
# Quick when models/dist already verifies. Extra arguments go to model-setup
# (e.g. --force, --check).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --locked -p model-setup -- "$@"
