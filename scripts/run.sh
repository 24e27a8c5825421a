#!/usr/bin/env bash
# The README's run command: the face pipeline on the demo portraits (public-domain
# photographs fetched by the model set-up), printing faces, scores and timings.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-packages.sh
scripts/setup-models.sh
cargo run --quiet --locked -p faces-cli --bin faces -- detect models/dist/demo/*.jpg "$@"
