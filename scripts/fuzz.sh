#!/usr/bin/env bash
# Fuzzes CleanPlate's parsers of untrusted bytes with cargo-fuzz (libFuzzer, nightly Rust).
#
#   scripts/fuzz.sh                      every target for FUZZ_SECONDS (default 120) each
#   scripts/fuzz.sh image_decode wire_json   only these targets
#   FUZZ_SECONDS=300 scripts/fuzz.sh     longer runs
#   FUZZ_MINIMISE=1 scripts/fuzz.sh ...  afterwards, replace fuzz/corpus/<target> with a
#                                        minimised corpus (libFuzzer's merge) of it and what
#                                        the run found, for committing
#
# Each target starts from the committed corpus fuzz/corpus/<target>/ (seeds and earlier
# findings) and writes new inputs to fuzz/corpus-work/<target>/ (not committed). A crash
# leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# and, once fixed, commit the input into fuzz/corpus/<target>/ (tests/tests/fuzz_corpus.rs
# replays that folder on stable in CI) and as a regression test beside the parser.
#
# One target at a time, under nice: the machine has two cores and is shared. The summary
# (executions, time, crashes) is printed at the end and kept in fuzz/last-run.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(image_decode scale_protocol paycode_qr wire_json http_bodies ert_model dlib_models tfjs_graph local_store)
SECONDS_EACH="${FUZZ_SECONDS:-120}"
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz from crates.io" >&2
    cargo install cargo-fuzz --locked
fi

# Inputs larger than a target's real inputs only slow it down.
max_len() {
    case "$1" in
        image_decode) echo 16384 ;;
        local_store) echo 65536 ;;
        tfjs_graph | ert_model | dlib_models) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

echo "fuzz.sh: building ${#TARGETS[@]} target(s) (release, debug assertions, AddressSanitizer)" >&2
# The HTTP target needs the backend stack, behind the fuzz crate's `http` feature. Every target
# is built and run with it: building some without would rebuild the fuzz crate (and everything
# whose features change) back and forth between targets.
features() { echo "--features=http"; }
(cd fuzz && nice -n 10 cargo +nightly fuzz build -O --debug-assertions --features=http)

summary=fuzz/last-run.txt
printf '%-15s %8s %12s %10s %8s %8s\n' target seconds executions exec/s corpus crashes >"$summary"
failed=0
for t in "${TARGETS[@]}"; do
    work="fuzz/corpus-work/$t"
    mkdir -p "$work" "fuzz/artifacts/$t" "fuzz/corpus/$t"
    log="fuzz/corpus-work/$t.log"
    before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    echo "fuzz.sh: $t for ${SECONDS_EACH}s" >&2
    status=0
    # shellcheck disable=SC2046
    (cd fuzz && nice -n 10 cargo +nightly fuzz run -O --debug-assertions $(features "$t") "$t" \
        "corpus-work/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1 || status=$?
    # A run stopped by a finding prints no final statistics: take the last status line's count.
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    if [ -z "$execs" ]; then
        execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1 || true)
    fi
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1 || true)
    after=$(find "fuzz/artifacts/$t" -type f | wc -l)
    corpus=$(find "$work" "fuzz/corpus/$t" -type f | wc -l)
    execs=${execs:-0}
    secs=${secs:-$SECONDS_EACH}
    rate=$((execs / (secs > 0 ? secs : 1)))
    printf '%-15s %8s %12s %10s %8s %8s\n' "$t" "$secs" "$execs" "$rate" "$corpus" "$((after - before))" >>"$summary"
    if [ "$status" -ne 0 ]; then
        failed=1
        echo "fuzz.sh: $t stopped with a finding (exit $status); see $log and fuzz/artifacts/$t/" >&2
        grep -m5 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" >&2 || true
    fi
    if [ "${FUZZ_MINIMISE:-0}" = 1 ]; then
        merged="fuzz/corpus-work/$t.merged"
        rm -rf "$merged" && mkdir -p "$merged"
        # shellcheck disable=SC2046
        (cd fuzz && nice -n 10 cargo +nightly fuzz run -O --debug-assertions $(features "$t") "$t" \
            "corpus-work/$t.merged" "corpus/$t" "corpus-work/$t" -- \
            -merge=1 -max_len="$(max_len "$t")" -timeout=30 -rss_limit_mb=2048) \
            >"fuzz/corpus-work/$t.merge.log" 2>&1
        # The hand-made seeds stay by name; the merge's picks are named by content hash.
        find "fuzz/corpus/$t" -type f ! -name 'seed-*' ! -name 'crash-*' -delete
        # libFuzzer names its files by the SHA-1 of their content: drop copies of kept files.
        for f in "fuzz/corpus/$t"/*; do rm -f "$merged/$(sha1sum "$f" | cut -d' ' -f1)"; done
        cp -n "$merged"/* "fuzz/corpus/$t/" 2>/dev/null || true
    fi
done
cat "$summary"
exit "$failed"
