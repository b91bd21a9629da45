#!/usr/bin/env bash
# Whole-command timings of `tofu-certs` against OpenSSH's known_hosts tools, on stores and
# known_hosts files of the same number of entries (1k, 100k and 1M by default).
#
#   bench/compare.sh                 # all sizes; builds what is missing, reuses the rest
#   SIZES="1000 100000" bench/compare.sh
#   REBUILD=1 bench/compare.sh       # regenerate the stores and known_hosts files
#
# For each size it times, as whole commands (process start included, output to /dev/null):
#   showcert host host-N:443          vs  ssh-keygen -F '[host-N]:443' -f known_hosts
#   deletecert host host-N:443        vs  ssh-keygen -R '[host-N]:443' -f known_hosts
#   listcerts                         vs  ssh-keygen -l -f known_hosts (one line per key too)
# each the median of several runs, then prints a table with the ratios, the file size per
# entry and the import rate. Every deleted entry is put back (untimed) before the next run,
# so the stores stay reusable. Stores are built with `tofu-certs import` of generated TOML:
# a few distinct certificates (ECDSA P-256, made by openssl) pinned at host-0:443 … , the
# same shape as the criterion benchmarks' stores.
#
# Needs: cargo, openssl, ssh-keygen (OpenSSH), awk, bash ≥ 5 (EPOCHREALTIME).
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$ROOT/target/bench-compare}
SIZES=${SIZES:-"1000 100000 1000000"}
SSH_KEYGEN=${SSH_KEYGEN:-/usr/bin/ssh-keygen}
DISTINCT=${DISTINCT:-64}      # distinct certificates and SSH keys
CHUNK=100000                  # pins per import file (an export file is read up to 256 MiB)
TOFU=$ROOT/target/release/tofu-certs

die() { echo "compare.sh: $*" >&2; exit 1; }
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 (EPOCHREALTIME)"
command -v openssl >/dev/null || die "needs openssl"
[[ -x $SSH_KEYGEN ]] || die "needs ssh-keygen at $SSH_KEYGEN (set SSH_KEYGEN)"

if [[ -z ${NO_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release -p tofu-cli --quiet)
fi
[[ -x $TOFU ]] || die "no $TOFU; run cargo build --release -p tofu-cli"

mkdir -p "$WORK"
MAT=$WORK/material

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

[[ -f $MAT/complete && -z ${REBUILD:-} ]] || make_material

declare -A IMPORT_RATE
# build SIZE: the store and known_hosts file of SIZE entries, unless already built.
build() {
    local n=$1 name store kh start end t0 t1 tmp
    name=$(name_of "$n")
    store=$WORK/stores/$name
    kh=$WORK/known_hosts/$name
    if [[ -f $store/complete && -f $kh.complete && -z ${REBUILD:-} ]]; then
        return
    fi
    rm -rf "$store" "$kh" "$kh.complete" "$kh.old"
    mkdir -p "$WORK/stores" "$WORK/known_hosts"
    echo "building the $name store and known_hosts file …" >&2
    tmp=$WORK/import.toml
    local import_us=0
    for ((start = 0; start < n; start += CHUNK)); do
        end=$((start + CHUNK < n ? start + CHUNK : n))
        toml "$start" "$end" >"$tmp"
        t0=$(now_us)
        "$TOFU" --store "$store" --actor bench import "$tmp" >/dev/null
        t1=$(now_us)
        import_us=$((import_us + t1 - t0))
        ((n <= CHUNK)) || echo "  $end pins" >&2
    done
    rm -f "$tmp"
    echo "$n $import_us" >"$store/complete"
    known_hosts_lines 0 "$n" >"$kh"
    touch "$kh.complete"
}


ROWS=()
SIZE_ROWS=()
LAST=()
for n in $SIZES; do
    build "$n"
    name=$(name_of "$n")
    store=$WORK/stores/$name
    kh=$WORK/known_hosts/$name
    if ((n >= 1000000)); then slow=5; else slow=11; fi
    fast=21

    echo "timing $name …" >&2
    floor=$(time_runs "$fast" 0 "$TOFU" --version)

    # showcert / ssh-keygen -F, on endpoints spread over the whole store
    PICK='r * 7919 % n'
    t_show=$(time_runs "$fast" 0 "$TOFU" --store "$store" showcert host "host-{i}:443")
    t_find=$(time_runs "$slow" 0 "$SSH_KEYGEN" -F "[host-{i}]:443" -f "$kh")

    # deletecert / ssh-keygen -R, each deleted entry put back afterwards (untimed)
    PICK='(r * 7919 + 104729) % n'
    restore=$WORK/restore.toml
    AFTER_EACH="toml {i} \$(({i} + 1)) >'$restore' && '$TOFU' --store '$store' --actor bench import '$restore' >/dev/null"
    t_del=$(time_runs "$fast" 0 "$TOFU" --store "$store" --actor bench deletecert host "host-{i}:443")
    AFTER_EACH="known_hosts_lines {i} \$(({i} + 1)) >>'$kh' && rm -f '$kh.old'"
    t_rm=$(time_runs "$slow" 0 "$SSH_KEYGEN" -R "[host-{i}]:443" -f "$kh")
    AFTER_EACH=
    PICK=

    # listing everything
    t_list=$(time_runs 5 0 "$TOFU" --store "$store" listcerts)
    # ssh-keygen -l takes about 100 µs a line: one run is enough beyond 100k lines.
    if ((n > 100000)); then
        t_lssh=$(NO_WARMUP=1 time_runs 1 0 "$SSH_KEYGEN" -l -f "$kh")
    else
        t_lssh=$(time_runs 3 0 "$SSH_KEYGEN" -l -f "$kh")
    fi
    lines=$("$TOFU" --store "$store" listcerts | wc -l)

    # size on disk per entry (the database, its write-ahead log and shared-memory index)
    db_bytes=$(cat "$store"/pins.sqlite3* | wc -c)
    kh_bytes=$(wc -c <"$kh")
    read -r _ import_us <"$store/complete"

    LAST=("$name" "$t_show" "$t_del" "$lines" "$t_list" "$((db_bytes / n))")
    ROWS+=("| $name | showcert / ssh-keygen -F | $(ms "$t_show") | $(ms "$t_find") | $(ratio "$t_find" "$t_show") |")
    ROWS+=("| $name | deletecert / ssh-keygen -R | $(ms "$t_del") | $(ms "$t_rm") | $(ratio "$t_rm" "$t_del") |")
    ROWS+=("| $name | listcerts / ssh-keygen -l | $(ms "$t_list") | $(ms "$t_lssh") | $(ratio "$t_lssh" "$t_list") |")
    SIZE_ROWS+=("| $name | $(ms "$floor") | $(awk -v l="$lines" -v us="$t_list" 'BEGIN { printf "%.0f", l / (us / 1e6) }') | $((db_bytes / n)) | $((kh_bytes / n)) | $(awk -v n="$n" -v us="$import_us" 'BEGIN { printf "%.0f", n / (us / 1e6) }') |")
done

echo
echo "Whole commands, median wall time in ms (process start included); ratio = OpenSSH time / tofu-certs time"
echo
echo "| entries | command (tofu-certs / OpenSSH) | tofu-certs ms | OpenSSH ms | ratio |"
echo "|---|---|--:|--:|--:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| entries | tofu-certs --version ms (process floor) | listcerts lines/s | store bytes/pin | known_hosts bytes/entry | import pins/s |"
echo "|---|--:|--:|--:|--:|--:|"
printf '%s\n' "${SIZE_ROWS[@]}"

# The issue's targets, at the largest size measured (they are stated for 1M entries).
read -r name t_show t_del lines t_list per_pin <<<"${LAST[*]}"
verdict() { awk -v v="$1" -v lim="$2" -v dir="$3" 'BEGIN { ok = (dir == "<") ? v < lim : v >= lim; print ok ? "met" : "MISSED" }'; }
rate=$(awk -v l="$lines" -v us="$t_list" 'BEGIN { printf "%.0f", l / (us / 1e6) }')
echo
echo "Targets (stated for 1M entries), at $name:"
echo
echo "| target | measured | |"
echo "|---|--:|---|"
echo "| deletecert under 50 ms | $(ms "$t_del") ms | $(verdict "$t_del" 50000 "<") |"
echo "| showcert under 20 ms | $(ms "$t_show") ms | $(verdict "$t_show" 20000 "<") |"
echo "| listcerts at least 500k lines/s | $rate lines/s | $(verdict "$rate" 500000 ">=") |"
echo "| under 2.5 KB on disk per pin | $per_pin bytes | $(verdict "$per_pin" 2500 "<") |"
