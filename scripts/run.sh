#!/usr/bin/env bash
# The README's run command: the backend on embedded SQLite with a demo canteen, and two
# headless kiosks (entrance and tray return with a simulated scale) on replays of the
# public-domain demo portraits, so charges and plate waste appear in the ledger.
# Arguments go to scripts/demo.sh (e.g. --no-wait to exit when the kiosks are done).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/system-packages.sh
scripts/setup-models.sh
exec scripts/demo.sh "$@"
