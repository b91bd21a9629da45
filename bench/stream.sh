#!/usr/bin/env bash
# Issue 15 item 2: a store of N pins (1M by default) exported and imported as JSON lines,
# streamed, with the wall time and the peak resident memory of each whole command
# (/usr/bin/time -v). The file is generated (a few distinct certificates, ECDSA P-256 made by
# openssl, pinned at host-0000000:443 …, with labels and history), imported into an empty
# store, exported back as JSON lines and as TOML, and the export imported into another
# empty store (the round trip), REPS times each.
#
#   bench/stream.sh                      # N=1000000 REPS=2
#   N=100000 REPS=3 bench/stream.sh
#
# Needs: openssl, awk, GNU time at /usr/bin/time. Leaves its files in $WORK.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$ROOT/target/bench-stream}
N=${N:-1000000}
REPS=${REPS:-2}
DISTINCT=${DISTINCT:-64}
TOFU=$ROOT/target/release/tofu-certs
SSH_KEYGEN=${SSH_KEYGEN:-/usr/bin/ssh-keygen}
MAT=$WORK/material

die() { echo "stream.sh: $*" >&2; exit 1; }
[[ -x /usr/bin/time ]] || die "needs GNU time at /usr/bin/time"
if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release -p tofu-cli --quiet)
fi
[[ -x $TOFU ]] || die "no $TOFU"
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
mkdir -p "$WORK"
[[ -e $MAT/complete ]] || make_material

# jsonl N: the header, then N pins in the store's order (endpoints in byte order).
jsonl() {
    awk -v end="$1" -v n="$DISTINCT" -v dir="$MAT" '
    BEGIN {
        for (i = 0; i < n; i++) {
            f = dir "/cert-" i ".pem"; pem = ""
            while ((getline line < f) > 0) pem = pem line "\\n"
            close(f); c[i] = pem
        }
        print "{\"version\":1}"
        for (k = 0; k < end; k++)
            printf "{\"endpoint\":\"host-%07d:443\",\"state\":\"active\",\"match\":\"certificate\",\"label\":\"device %d\",\"source\":\"operator\",\"pinned_at\":\"2026-11-21T19:53:52Z\",\"first_seen\":\"2026-11-22T08:00:00Z\",\"last_seen\":\"2026-12-01T10:00:00Z\",\"times_seen\":%d,\"certificate\":\"%s\"}\n", k, k, k % 1000, c[k % n]
    }'
}

FILE=$WORK/pins-$N.jsonl
[[ -s $FILE ]] || jsonl "$N" >"$FILE"
echo "file: $FILE, $(wc -c <"$FILE") bytes, $N pins; load: $(cut -d' ' -f1-3 /proc/loadavg)"

# measure LABEL CMD…: runs CMD under /usr/bin/time -v; prints wall seconds, pins/s, peak RSS.
measure() {
    local label=$1; shift
    local log=$WORK/time.log
    /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; die "$label failed"; }
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
    awk -v l="$label" -v w="$wall" -v r="$rss" -v n="$N" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
        'BEGIN { printf "%-28s %8.2f s %10.0f pins/s %8.1f MB peak RSS   (load %s)\n", l, w, n / w, r / 1024, load }'
}

for ((r = 1; r <= REPS; r++)); do
    rm -rf "$WORK/a" "$WORK/b" "$WORK/out.jsonl" "$WORK/out.toml"
    measure "import jsonl (new store)" "$TOFU" --store "$WORK/a" import "$FILE"
    measure "export jsonl" "$TOFU" --store "$WORK/a" export --format jsonl -o "$WORK/out.jsonl"
    measure "export toml" "$TOFU" --store "$WORK/a" export -o "$WORK/out.toml"
    measure "import exported jsonl" "$TOFU" --store "$WORK/b" import "$WORK/out.jsonl"
    measure "import again (unchanged)" "$TOFU" --store "$WORK/b" import "$WORK/out.jsonl"
    cmp -s <("$TOFU" --store "$WORK/b" export --format jsonl) "$WORK/out.jsonl" \
        && echo "round trip: the copy exports to the same bytes" || die "round trip differs"
    ls -l "$WORK/out.jsonl" "$WORK/out.toml" | awk '{ print $5, $9 }'
done
