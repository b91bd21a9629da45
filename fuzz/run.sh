#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60) and prints, per target, the
# executions, the corpus size and whether it crashed. Exits 1 if any target crashed.
#
#   fuzz/run.sh 20          # a short run
#   fuzz/run.sh 1800        # the longer run RELIABILITY.md quotes (30 min per target)
#   FUZZ_SANITIZER=none fuzz/run.sh 60   # without AddressSanitizer (builds and runs faster)
#
# The corpus grows in fuzz/corpus/TARGET (not committed); the runs also read the committed
# seeds (fuzz/seeds/TARGET) and regression inputs (fuzz/regressions/TARGET). A crash is
# written to fuzz/artifacts/TARGET/: fix the bug, then copy the input to
# fuzz/regressions/TARGET/ under a name that says what it was, so that `cargo test` keeps it
# fixed (tests/tests/reliability_fuzz_inputs.rs runs every committed input).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-address}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module); this lets the
# stable toolchain accept them, as no nightly toolchain can be installed here.
export RUSTC_BOOTSTRAP=1

mkdir -p fuzz/logs
cargo fuzz build -O --sanitizer "$sanitizer"

status=0
summary=""
for target in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    inputs=("fuzz/corpus/$target")
    for extra in "fuzz/seeds/$target" "fuzz/regressions/$target"; do
        [ -d "$extra" ] && inputs+=("$extra")
    done
    log="fuzz/logs/$target.log"
    if cargo fuzz run -O --sanitizer "$sanitizer" "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        outcome="ok"
    else
        outcome="CRASH (see $log and fuzz/artifacts/$target/)"
        status=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    summary+=$(printf '%-12s %6ss %12s executions %6s corpus inputs  %s' \
        "$target" "$seconds" "${execs:-?}" "$corpus" "$outcome")$'\n'
done
printf '\nfuzz run (sanitizer %s):\n%s' "$sanitizer" "$summary"
exit "$status"
