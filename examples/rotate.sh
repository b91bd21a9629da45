#!/usr/bin/env bash
# A planned certificate rotation, as an automation script does it: stage the new certificate
# on the client side before the server switches, switch the server, and check that the first
# handshake with the new certificate promoted the staged pin and retired the old one. Every
# step's exit status is checked; the script exits non-zero at the first surprise.
#
#   examples/rotate.sh        # uses `tofu-certs` from PATH, or the binary named by $TOFU_CERTS
#
# It runs an `openssl s_server` on 127.0.0.1 as the server being rotated, and keeps its store
# in a temporary directory (or $TOFU_CERTS_STORE if set).
set -euo pipefail

tofu=${TOFU_CERTS:-tofu-certs}
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export TOFU_CERTS_STORE=${TOFU_CERTS_STORE:-$work/store}
export NO_COLOR=1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="127.0.0.1:$port"

# run EXPECTED_STATUS COMMAND...: shows the command, runs it, and checks its exit status.
run() {
    local want=$1
    shift
    echo "+ $*"
    local got=0
    "$@" || got=$?
    if [ "$got" -ne "$want" ]; then
        echo "rotate.sh: \`$*\` exited with $got, expected $want" >&2
        exit 1
    fi
}

new_certificate() { # NAME: a fresh key and self-signed certificate, as after a new CSR
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
        -subj "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=prime-sec" \
        -keyout "$work/$1.key" -out "$work/$1.pem" 2>/dev/null
}

fingerprint() { # NAME: the certificate's SHA-256 fingerprint as tofu-certs prints it
    echo "SHA256:$(openssl x509 -in "$work/$1.pem" -outform DER | openssl dgst -sha256 -binary | base64 | tr -d '=')"
}

serve() { # NAME: (re)start the server with that certificate
    [ -n "$server_pid" ] && { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
    openssl s_server -accept "$endpoint" -cert "$work/$1.pem" -key "$work/$1.key" -quiet \
        </dev/null >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "rotate.sh: openssl s_server did not start on $endpoint" >&2
    exit 1
}

echo "== the server runs its current certificate, pinned by the client on first use"
new_certificate old
serve old
run 0 "$tofu" probe host "$endpoint" --pin

echo "== a new certificate is made, and staged on the client before the server switches"
new_certificate new
run 0 "$tofu" addcert host "$endpoint" --cert "$work/new.pem" --next --label "rotation $(date +%F)"
run 0 "$tofu" probe host "$endpoint"   # the old certificate still matches

echo "== the server switches; the first handshake with the new certificate promotes the staged pin"
serve new
run 0 "$tofu" probe host "$endpoint"

shown=$("$tofu" showcert host "$endpoint")
log=$("$tofu" log host "$endpoint")
grep -qF "$(fingerprint new)" <<<"$shown" || { echo "rotate.sh: the new certificate is not pinned" >&2; exit 1; }
if grep -qF "$(fingerprint old)" <<<"$shown"; then
    echo "rotate.sh: the old certificate is still pinned" >&2
    exit 1
fi
grep -q "promoted" <<<"$log" || { echo "rotate.sh: the audit log has no promotion" >&2; exit 1; }
grep -q "retired" <<<"$log" || { echo "rotate.sh: the audit log has no retirement" >&2; exit 1; }
echo "$log"

echo "== a server rolled back to the old certificate is refused: it was retired"
serve old
run 4 "$tofu" probe host "$endpoint"

echo "rotation complete: $endpoint is pinned to $(fingerprint new)"
