#!/usr/bin/env bash
# Whole-command timings of `tofu-certs` on its two backends side by side (issue 12): an SQLite
# store directory, and one PostgreSQL store reached over the server's unix socket and over
# TCP loopback (the same database, so only the transport differs).
#
#   eval "$(TOFU_PG_PORT=55600 .ci/postgres start)"     # a cluster of your own, on TCP too
#   PG_PORT=55600 PG_SOCKET_DIR=$TOFU_TEST_POSTGRES_DIR N=20000 bench/backends.sh
#
# It builds (or reuses) stores of N pins with `tofu-certs import` of bench/compare.sh's
# generated TOML, timing the import (pins/s, over the socket for PostgreSQL), then times,
# with bench/compare.sh's method (median of REPS runs after one warm-up, process start
# included, output to /dev/null):
#   showcert host host-I:443               on endpoints spread over the store
#   deletecert host host-I:443             each on an endpoint not deleted before; put back after
#   listcerts                              lines/s
#   import of IMPORT_N fresh pins          pins/s (new endpoints each run; they stay in the store)
# The PostgreSQL database is `tofu_bench_N`, created here (dropped first with REBUILD=1).
#
# Needs: cargo, openssl, ssh-keygen, psql/createdb, awk, bash ≥ 5.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$ROOT/target/bench-backends}
N=${N:-200000}
REPS=${REPS:-11}
LIST_REPS=${LIST_REPS:-5}
IMPORT_N=${IMPORT_N:-2000}
SSH_KEYGEN=${SSH_KEYGEN:-/usr/bin/ssh-keygen}
DISTINCT=${DISTINCT:-64}
CHUNK=${CHUNK:-100000}
PG_PORT=${PG_PORT:?set PG_PORT to the cluster port}
PG_SOCKET_DIR=${PG_SOCKET_DIR:?set PG_SOCKET_DIR (the directory of the server socket)}
TOFU=$ROOT/target/release/tofu-certs

die() { echo "backends.sh: $*" >&2; exit 1; }
[[ -n ${EPOCHREALTIME:-} ]] || die "needs bash 5 (EPOCHREALTIME)"
if [[ -z ${NO_BUILD:-} ]]; then (cd "$ROOT" && cargo build --release -p tofu-cli --quiet); fi
[[ -x $TOFU ]] || die "no $TOFU; run cargo build --release -p tofu-cli"

mkdir -p "$WORK"
MAT=$WORK/material
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
[[ -f $MAT/complete && -z ${REBUILD:-} ]] || make_material

name=$(name_of "$N")
db=tofu_bench_$name
SQLITE=$WORK/stores/$name
SOCK="postgresql://postgres@/$db?host=$PG_SOCKET_DIR&port=$PG_PORT"
TCP="postgresql://postgres@127.0.0.1:$PG_PORT/$db?sslmode=disable"
psql_() { psql -X -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres "$@"; }

# import_all STORE MARKER: imports host-0 … host-(N-1) in CHUNK-pin files; writes the time.
import_all() {
    local store=$1 marker=$2 start end t0 t1 us=0 tmp=$WORK/import.toml
    for ((start = 0; start < N; start += CHUNK)); do
        end=$((start + CHUNK < N ? start + CHUNK : N))
        toml "$start" "$end" >"$tmp"
        t0=$(now_us)
        "$TOFU" --store "$store" --actor bench import "$tmp" >/dev/null
        t1=$(now_us)
        us=$((us + t1 - t0))
        echo "  $end pins, $(awk -v n="$end" -v us="$us" 'BEGIN { printf "%.0f", n / (us / 1e6) }') pins/s so far" >&2
    done
    rm -f "$tmp"
    echo "$N $us" >"$marker"
}

if [[ ! -f $SQLITE/complete || -n ${REBUILD:-} ]]; then
    rm -rf "$SQLITE"; mkdir -p "$WORK/stores"
    echo "building the $name SQLite store …" >&2
    import_all "$SQLITE" "$WORK/sqlite-$name.import"
    touch "$SQLITE/complete"
fi
if [[ ! -f $WORK/pg-$name.complete || -n ${REBUILD:-} ]]; then
    psql_ -c "DROP DATABASE IF EXISTS $db" postgres
    psql_ -c "CREATE DATABASE $db" postgres
    echo "building the $name PostgreSQL store (over the socket) …" >&2
    import_all "$SOCK" "$WORK/pg-$name.import"
    touch "$WORK/pg-$name.complete"
fi

# Endpoints deleted by one run of this script are not deleted again by the next: each run
# starts its picks at a new offset (kept in $WORK/delete-offset).
offset=$(cat "$WORK/delete-offset" 2>/dev/null || echo 0)
echo $((offset + 1)) >"$WORK/delete-offset"
fresh=$(cat "$WORK/fresh-next" 2>/dev/null || echo "$N")
restore=$WORK/restore.toml

rate() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ROWS=()
for backend in sqlite socket tcp; do
    case $backend in
        sqlite) store=$SQLITE ;;
        socket) store=$SOCK ;;
        tcp) store=$TCP ;;
    esac
    echo "timing $backend …" >&2
    floor=$(time_runs "$REPS" 0 "$TOFU" --version)
    PICK='r * 7919 % n'
    n=$N
    t_show=$(time_runs "$REPS" 0 "$TOFU" --store "$store" showcert host "host-{i}:443")
    # a different endpoint every run, in every backend and every run of the script
    case $backend in sqlite) b=0 ;; socket) b=1 ;; tcp) b=2 ;; esac
    PICK="(r * 7919 + 104729 + ($offset * 3 + $b) * 613) % n"
    AFTER_EACH="toml {i} \$(({i} + 1)) >'$restore' && '$TOFU' --store '$store' --actor bench import '$restore' >/dev/null"
    t_del=$(time_runs "$REPS" 0 "$TOFU" --store "$store" --actor bench deletecert host "host-{i}:443")
    AFTER_EACH=
    PICK=
    t_list=$(time_runs "$LIST_REPS" 0 "$TOFU" --store "$store" listcerts)
    lines=$("$TOFU" --store "$store" listcerts | wc -l)
    # import of IMPORT_N pins on endpoints never seen before, a new file for every run
    imp=()
    for ((r = 0; r < 3; r++)); do
        toml "$fresh" $((fresh + IMPORT_N)) >"$WORK/fresh.toml"
        fresh=$((fresh + IMPORT_N))
        t0=$(now_us)
        "$TOFU" --store "$store" --actor bench import "$WORK/fresh.toml" >/dev/null
        t1=$(now_us)
        imp+=($((t1 - t0)))
    done
    echo "$fresh" >"$WORK/fresh-next"
    t_imp=$(printf '%s\n' "${imp[@]}" | sort -n | sed -n 2p)
    ROWS+=("| $backend | $(ms "$floor") | $(ms "$t_show") | $(ms "$t_del") | $(ms "$t_list") ($lines lines) | $(rate "$lines" "$t_list") | $(ms "$t_imp") | $(rate "$IMPORT_N" "$t_imp") |")
done

read -r _ sq_us <"$WORK/sqlite-$name.import"
read -r _ pg_us <"$WORK/pg-$name.import"
echo
echo "Whole commands at $name pins, median wall time in ms (process start included)"
echo
echo "| store | --version ms | showcert ms | deletecert ms | listcerts ms | listcerts lines/s | import of $IMPORT_N new pins ms | import pins/s |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Building the stores (import of $N pins in files of $CHUNK): SQLite $(rate "$N" "$sq_us") pins/s, PostgreSQL over the socket $(rate "$N" "$pg_us") pins/s"
