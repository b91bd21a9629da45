# Shared by bench/compare.sh and bench/backends.sh (sourced, not run): the certificate
# material, the generated export files and the whole-command timer. Expects MAT, DISTINCT
# and SSH_KEYGEN to be set, and a die() function.

# --- material: DISTINCT certificates (PEM) and SSH public keys ---------------------------
make_material() {
    rm -rf "$MAT" && mkdir -p "$MAT"
    local i
    for ((i = 0; i < DISTINCT; i++)); do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -keyout /dev/null -out "$MAT/cert-$i.pem" \
            -subj "/C=US/ST=CA/L=SJ/O=Cisco Systems/OU=Prime Infra/CN=device-$i.example" \
            -addext "subjectAltName=DNS:device-$i.example,IP:10.1.1.1" 2>/dev/null
        "$SSH_KEYGEN" -q -t ecdsa -b 256 -N '' -C '' -f "$MAT/key-$i" </dev/null
        cut -d' ' -f1,2 "$MAT/key-$i.pub" >"$MAT/ssh-$i.pub"
    done
    touch "$MAT/complete"
}

# toml START END: an export file (version 1) with pins host-START:443 … host-(END-1):443.
toml() {
    awk -v start="$1" -v end="$2" -v n="$DISTINCT" -v dir="$MAT" '
    BEGIN {
        for (i = 0; i < n; i++) {
            f = dir "/cert-" i ".pem"; pem = ""
            while ((getline line < f) > 0) pem = pem line "\n"
            close(f); c[i] = pem
        }
        print "version = 1"
        for (k = start; k < end; k++)
            printf "\n[[pin]]\nendpoint = \"host-%d:443\"\nstate = \"active\"\ncertificate = \"\"\"\n%s\"\"\"\n", k, c[k % n]
    }'
}

# known_hosts_lines START END: the known_hosts lines of the same endpoints.
known_hosts_lines() {
    awk -v start="$1" -v end="$2" -v n="$DISTINCT" -v dir="$MAT" '
    BEGIN {
        for (i = 0; i < n; i++) { f = dir "/ssh-" i ".pub"; getline k[i] < f; close(f) }
        for (j = start; j < end; j++) printf "[host-%d]:443 %s\n", j, k[j % n]
    }'
}

name_of() {
    local n=$1
    if ((n >= 1000000 && n % 1000000 == 0)); then echo "$((n / 1000000))m"
    elif ((n >= 1000 && n % 1000 == 0)); then echo "$((n / 1000))k"
    else echo "$n"; fi
}

now_us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }

# time_runs REPS EXPECTED_STATUS CMD…: runs CMD (stdout and stderr to /dev/null) REPS times
# after one untimed run (none when NO_WARMUP is set) and prints the median wall time in
# microseconds. `{i}` in CMD is replaced by the endpoint index of the run: $((PICK)), an
# arithmetic expression of the run number r and the size n (0 when PICK is empty).
# AFTER_EACH, when set, is a shell command run (untimed) after each run, with `{i}` replaced
# as well.
time_runs() {
    local reps=$1 want=$2; shift 2
    local -a times=() cmd
    local r i status t0 t1 arg
    for ((r = ${NO_WARMUP:+1}+0; r <= reps; r++)); do
        i=$(( ${PICK:-0} ))
        cmd=()
        for arg in "$@"; do cmd+=("${arg//\{i\}/$i}"); done
        t0=$(now_us)
        status=0
        "${cmd[@]}" >/dev/null 2>&1 || status=$?
        t1=$(now_us)
        [[ -z ${AFTER_EACH:-} ]] || eval "${AFTER_EACH//\{i\}/$i}"
        ((status == want)) || die "exit status $status, not $want: ${cmd[*]}"
        ((r == 0)) || times+=($((t1 - t0)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", a / b }'; }
