#!/usr/bin/env bash
# The main job in one command: the backend on embedded SQLite with a demo canteen, two
# registered kiosks running headless (a pay kiosk at the entrance and a return station
# with a simulated plate scale) on replays made from the public-domain demo portraits in
# models/dist/demo, so charges and plate waste appear in the ledger within a minute.
#
#   scripts/demo.sh            # runs, prints the ledger, keeps the backend up until Ctrl-C
#   scripts/demo.sh --no-wait  # exits when the kiosks are done (CI)
#
# Environment: CLEANPLATE_DEMO_PORT (default 8080), CLEANPLATE_DEMO_DIR (default: a new
# temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

WAIT=1
SECONDS=0
say() { printf "== [%3d s] %s\n" "$SECONDS" "$1"; }
[ "${1:-}" = "--no-wait" ] && WAIT=0

[ -f models/dist/manifest.json ] || scripts/setup-models.sh
# With a display the entrance kiosk runs with its touch screen (kiosk-ui); without one, headless.
UI=0
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${CLEANPLATE_DEMO_HEADLESS:-0}" != 1 ]; then UI=1; fi
say "building the backend and the kiosk"
cargo build --quiet --locked -p backend --bin backend -p kiosk --bin kiosk
if [ "$UI" = 1 ]; then
  say "building the kiosk's touch screen (a display is available)"
  cargo build --quiet --locked -p kiosk-ui --bin kiosk-ui
fi
# Cargo puts binaries under CARGO_TARGET_DIR when it is set (e.g. a target shared by checkouts).
BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug"

PORT="${CLEANPLATE_DEMO_PORT:-8080}"
DATA="${CLEANPLATE_DEMO_DIR:-$(mktemp -d /tmp/cleanplate-demo.XXXXXX)}"
mkdir -p "$DATA"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The backend: development secrets are fine for a demo on localhost.
export CLEANPLATE_DATA_DIR="$DATA/backend" CLEANPLATE_DEV_MODE=true RUST_LOG="${RUST_LOG:-warn}"
mkdir -p "$CLEANPLATE_DATA_DIR"
say "seeding a demo canteen in $DATA/backend"
# 29 days of history before today: with today's live kiosks, the dashboard's 30 days.
"$BIN/backend" seed-demo --history-days 29 | tee "$DATA/seed.txt"
CODE1="$(sed -n 's/.*enrolment code[^:]*: *//p' "$DATA/seed.txt" | tr -d '[:space:]')"
PASSWORD="demo-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
CLEANPLATE_NEW_PASSWORD="$PASSWORD" "$BIN/backend" create-manager --username manager >/dev/null

start_backend() {
  : >"$DATA/backend.log"
  "$BIN/backend" serve --listen "127.0.0.1:$1" >"$DATA/backend.log" 2>&1 &
  BACKEND_PID=$!
  for _ in $(seq 1 150); do
    grep -q "listening on" "$DATA/backend.log" 2>/dev/null && return 0
    kill -0 "$BACKEND_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
say "starting the backend"
if ! start_backend "$PORT"; then
  echo "port $PORT is taken; letting the system choose one"
  start_backend 0 || { head -5 "$DATA/backend.log"; echo "the backend did not start" >&2; exit 1; }
fi
PIDS+=("$BACKEND_PID")
URL="http://$(sed -n 's/.*listening on //p' "$DATA/backend.log" | head -1)"
echo "   backend at $URL"

export CLEANPLATE_DESK_PASSWORD="$PASSWORD"
DESK=("$BIN/kiosk" --backend-url "$URL" desk --username manager)
say "enrolling faces at the desk (public-domain portraits)"
"${DESK[@]}" all-day-meals
"${DESK[@]}" enrol-faces --employee-no E0001 models/dist/demo/obama.jpg models/dist/demo/obama2.jpg
"${DESK[@]}" enrol-faces --employee-no E0002 models/dist/demo/biden.jpg
CODE2="$("${DESK[@]}" enrolment-code)"

# Kiosk configuration: the same all-day meal windows as the canteen, so "one charge per
# person per meal" is judged alike offline.
write_config() {
  cat >"$1" <<EOF
name = "$2"
mode = "$3"
[source]
fps = 8.0
[scale]
tare_g = 350
[[meal_windows]]
meal = "breakfast"
start = "00:00"
end = "08:00"
[[meal_windows]]
meal = "lunch"
start = "08:00"
end = "16:00"
[[meal_windows]]
meal = "dinner"
start = "16:00"
end = "24:00"
EOF
}
write_config "$DATA/pay.toml" "Entrance" pay
write_config "$DATA/return.toml" "Tray return" return

say "registering two kiosks"
PAY=("$BIN/kiosk" --config "$DATA/pay.toml" --backend-url "$URL" --data-dir "$DATA/kiosk-pay")
RET=("$BIN/kiosk" --config "$DATA/return.toml" --backend-url "$URL" --data-dir "$DATA/kiosk-return")
"${PAY[@]}" register --code "$CODE1"
"${RET[@]}" register --code "$CODE2"

# Face is never the only way to pay: E0004 shows a one-time pay code from their phone,
# signed in as every demo person is: employee number and the demo password seed-demo printed.
DEMO_STAFF_PASSWORD="$(sed -n 's/.*staff sign-in.* \/ *//p' "$DATA/seed.txt" | tr -d '[:space:]')"
PAYCODE="$(CLEANPLATE_STAFF_PASSWORD="$DEMO_STAFF_PASSWORD" "${DESK[@]}" pay-code --employee-no E0004 --staff-username E0004)"
say "making replays: a printed photo held still, two diners, then a QR pay code"
"$BIN/kiosk" make-replay --out "$DATA/replay-pay" --frames 12 --gap 6 --still models/dist/demo/obama2.jpg >/dev/null
"$BIN/kiosk" make-replay --out "$DATA/replay-pay-2" --frames 12 --gap 6 --qr "$PAYCODE" models/dist/demo/obama3.jpg models/dist/demo/biden.jpg >/dev/null
n=$(ls "$DATA/replay-pay" | wc -l)
for f in "$DATA"/replay-pay-2/*; do n=$((n + 1)); mv "$f" "$DATA/replay-pay/$(printf %05d $n).${f##*.}"; done
"$BIN/kiosk" make-replay --out "$DATA/replay-return" --frames 16 --gap 30 models/dist/demo/obama3.jpg models/dist/demo/biden.jpg >/dev/null

say "starting the simulated plate scale"
"$BIN/kiosk" scale-sim --trays 812,655 --off-s 2 --on-s 3 --noise --once >"$DATA/scale.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do grep -q "listening on" "$DATA/scale.log" 2>/dev/null && break; sleep 0.1; done
SCALE="$(sed -n 's/.*listening on //p' "$DATA/scale.log" | head -1)"

if [ "$UI" = 1 ]; then
  say "running the pay kiosk on screen (kiosk-ui, closes after 90 s) and the return station (headless)"
  "$BIN/kiosk-ui" --config "$DATA/pay.toml" --backend-url "$URL" --data-dir "$DATA/kiosk-pay" \
    --replay "$DATA/replay-pay" --max-runtime-s 90 >"$DATA/pay-events.jsonl" 2>"$DATA/pay.log" &
else
  say "running the pay kiosk and the return station (headless; events below)"
  "${PAY[@]}" run --replay "$DATA/replay-pay" --exit-after-replay --max-runtime-s 120 --json >"$DATA/pay-events.jsonl" 2>"$DATA/pay.log" &
fi
KP=$!
"${RET[@]}" run --replay "$DATA/replay-return" --scale "$SCALE" --exit-after-replay --max-runtime-s 120 --json \
  >"$DATA/return-events.jsonl" 2>"$DATA/return.log" &
KR=$!
PIDS+=("$KP" "$KR")
wait "$KP" || echo "pay kiosk exited with an error (see $DATA/pay.log)"
say "pay kiosk done"
wait "$KR" || echo "return station exited with an error (see $DATA/return.log)"
say "return station done"

show() {
  # What a screen would show: decisions, payments and waste, one line each.
  grep -E '"event":"(paid|declined|already_charged|pay_code_refused|waste_recorded)"|"face":"(identified|refused)"' "$1" || true
}
echo "-- pay kiosk events:"
show "$DATA/pay-events.jsonl"
echo "-- return station events:"
show "$DATA/return-events.jsonl"
echo
"${DESK[@]}" ledger
echo
echo "Ledger (API): $URL/api/v1/charges and $URL/api/v1/waste (log in as 'manager' / '$PASSWORD';"
echo "the API is described at $URL/api/openapi.json). Demo data: $DATA"
STAFF_SIGN_IN="$(sed -n 's/.*staff sign-in[^:]*: *//p' "$DATA/seed.txt")"
echo "Web pages: $URL/ — managers sign in as 'manager' / '$PASSWORD' (dashboard, journal,"
echo "refunds); staff on a phone with employee number and password: $STAFF_SIGN_IN"
if [ "$WAIT" = 1 ]; then
  echo "The backend keeps running; press Ctrl-C to stop."
  wait "${PIDS[0]}"
fi
