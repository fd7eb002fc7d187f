# Shell functions shared by the benchmark scripts: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.
# Sets REPO (the workspace root); defines log, parse_args, need_rounds, stop_pids, free_port,
# field, busy_cores, steal_snapshot, make_pki and lockver. Not a script of its own.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# parse_args SPEC... -- ARG...: the script's options. A SPEC "--flag=VAR" sets VAR to the next
# argument; "--flag:CODE" is a switch that runs CODE. -h/--help and an unknown option call the
# script's own usage (which exits).
parse_args() {
  local -a specs=()
  while [[ $1 != -- ]]; do
    specs+=("$1")
    shift
  done
  shift
  local spec found
  while (($#)); do
    [[ $1 == -h || $1 == --help ]] && usage
    found=0
    for spec in "${specs[@]}"; do
      if [[ $spec == "$1="* ]]; then
        (($# >= 2)) || { echo "$1 needs a value" >&2; usage; }
        printf -v "${spec#*=}" '%s' "$2"
        shift
        found=1
        break
      elif [[ $spec == "$1:"* ]]; then
        eval "${spec#*:}"
        found=1
        break
      fi
    done
    ((found)) || { echo "unknown option $1" >&2; usage; }
    shift
  done
}

# need_rounds: exits 2 unless ROUNDS is a whole number >= 1.
need_rounds() { [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be >= 1" >&2; exit 2; }; }

# stop_pids: SIGTERM to every pid in PIDS, up to 5 s each to exit, then SIGKILL; empties PIDS.
stop_pids() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  PIDS=()
}

# free_port: a port in 20000-32767 (below the ephemeral range) that no TCP or UDP socket uses.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12768))
    ss -Hanu "sport = :$p" | grep -q . && continue
    ss -Hant "sport = :$p" | grep -q . && continue
    echo "$p"
    return 0
  done
  echo "no free port found" >&2
  return 1
}

# field NAME LINE: the value of NAME=... in a RESULT line.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# busy_cores FIELDS: CPU cores the whole machine kept busy over the next second, counting the
# /proc/stat cpu columns in FIELDS (an awk sum such as "$2+$3+$4+$7+$8") as busy.
busy_cores() {
  local a b prog="/^cpu /{print $1, \$2+\$3+\$4+\$5+\$6+\$7+\$8+\$9}"
  a=$(awk "$prog" /proc/stat)
  sleep 1
  b=$(awk "$prog" /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
    d = y[2] - x[2]; printf "%.2f", (d > 0) ? n * (y[1] - x[1]) / d : 0 }'
}

# steal_snapshot: "STEAL TOTAL" jiffies of all CPUs so far (two of them give the steal share).
steal_snapshot() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $9, t}' /proc/stat; }

# make_pki DIR CN: an ECDSA P-256 CA (ca.pem, ca.key, subject CN) and a localhost/127.0.0.1
# server leaf it signed (leaf.pem, leaf.key) in DIR, made with openssl; quiet.
make_pki() {
  mkdir -p "$1"
  (
    cd "$1"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -subj "/CN=$2" -days 7 -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
    openssl req -new -key leaf.key -subj "/CN=localhost" -out leaf.csr
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 \
      -extfile leaf.ext -out leaf.pem 2>/dev/null
  ) >/dev/null 2>&1
}

# lockver NAME: the version of crate NAME in Cargo.lock.
lockver() { awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$REPO/Cargo.lock"; }
