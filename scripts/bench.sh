#!/usr/bin/env bash
# Produces the figures of BENCHMARKS.md for one scale: generate, import, serve, load; then the
# same data and load against OpenLDAP slapd (back-mdb) for comparison.
# Usage: scripts/bench.sh USERS GROUPS [WORKDIR]      (release build: cargo build --release --bins)
#   env: DURATION (20s), CONNECTIONS (16), SKIP_SLAPD=1, SKIP_DIRD=1, BIN (dird binaries)
#        scripts/bench.sh --pin [options]  runs the pinned, alternating comparison of issue 14
#        (scripts/bench-pin.sh; --help there)
# Every server started here is stopped by its PID. Not part of the test suite.
set -euo pipefail
if [ "${1:-}" = --pin ]; then shift; exec "$(dirname "$0")/bench-pin.sh" "$@"; fi
USERS=$1 GROUPS_N=$2
W=${3:-/tmp/dird-bench-$USERS}
DURATION=${DURATION:-20s} CONNS=${CONNECTIONS:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
BASE=dc=example,dc=com
ADMIN_PW=Bench-Admin-Passw0rd!
USER_PW=Bench-Passw0rd!
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
say() { printf '\n### %s   [loadavg %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
run() { printf '$ %s\n' "$*"; "$@"; }
rport() { local p; while :; do p=$((20000 + RANDOM % 30000)); ss -Hltn "( sport = :$p )" | grep -q . || { echo "$p"; return; }; done; }
mem() { grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$1/status" | tr -s ' \t' ' ' | paste -sd' '; }
load() {  # load URL PID [RDN-ATTR]: warm-up, memory, search, bind, memory
  local url=$1 pid=$2 rdn=${3:-cn}
  local user1=$rdn=user1,ou=People,$BASE
  say "warm-up (5 s search, not a figure)"
  run "$BIN/dird-bench" search --url "$url" --bind-dn "$user1" --password "$USER_PW" \
    --connections "$CONNS" --duration 5s --users "$USERS"
  echo "memory after warm-up: $(mem "$pid")"
  say "search"
  run "$BIN/dird-bench" search --url "$url" --bind-dn "$user1" --password "$USER_PW" \
    --connections "$CONNS" --duration "$DURATION" --users "$USERS"
  say "bind"
  run "$BIN/dird-bench" bind --url "$url" --connections "$CONNS" --duration "$DURATION" --users "$USERS" \
    --dn-template "$rdn=user{},ou=People,$BASE"
  echo "memory after load: $(mem "$pid")"
}

mkdir -p "$W"
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(rustc -V)"
say "generate $USERS users, $GROUPS_N groups"
[ -s "$W/dird.ldif" ] || run "$BIN/dird-bench" gen --users "$USERS" --groups "$GROUPS_N" --out "$W/dird.ldif"
HASH=$(grep -m1 '^userPassword: ' "$W/dird.ldif" | cut -d' ' -f2)
[ -s "$W/slapd.ldif" ] || run "$BIN/dird-bench" gen --users "$USERS" --groups "$GROUPS_N" --flavor openldap \
  --base-entry --password-hash "$HASH" --out "$W/slapd.ldif"
ls -l "$W"/*.ldif

if [ -z "${SKIP_DIRD:-}" ]; then
  D=$W/dird; rm -rf "$D"; mkdir -p "$D"
  PORT=$(rport); SPORT=$(rport)
  cat > "$D/dird.toml" <<EOF
mode = "standalone"
tier = "enterprise"
data_dir = "$D/data"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:$PORT"]
ldaps_listen = ["127.0.0.1:$SPORT"]
EOF
  export DIRD_ADMIN_PASSWORD=$ADMIN_PW DIRD_LOG=warn
  say "dird init + import"
  run "$BIN/dird" --config "$D/dird.toml" init >/dev/null
  run /usr/bin/time -f 'import: %e s elapsed, %U s user, %S s sys, max RSS %M KiB' \
    "$BIN/dird" --config "$D/dird.toml" import "$W/dird.ldif"
  echo "database: $(du -k --apparent-size "$D/data/dird.redb" | cut -f1) KiB, $(du -k "$D/data/dird.redb" | cut -f1) KiB on disk"
  say "dird serve"
  "$BIN/dird" --config "$D/dird.toml" serve > "$D/serve.out" 2> "$D/serve.err" &
  DPID=$!; PIDS+=("$DPID")
  for _ in $(seq 1 600); do grep -q '^dird ready' "$D/serve.out" && break; sleep 0.1; done
  grep '^dird ready' "$D/serve.out" || { cat "$D/serve.err"; exit 1; }
  echo "memory after start: $(mem "$DPID")"
  load "ldap://127.0.0.1:$PORT" "$DPID"
  kill -TERM "$DPID"; wait "$DPID" || true; PIDS=()
fi

if [ -z "${SKIP_SLAPD:-}" ]; then
  S=$W/slapd; rm -rf "$S"; mkdir -p "$S/db"
  PORT=$(rport)
  # groupOfNames + posixGroup needs rfc2307bis (posixGroup AUXILIARY), derived from nis.schema.
  sed "/NAME 'posixGroup'/,/^\$/ s/STRUCTURAL/AUXILIARY/" /etc/ldap/schema/nis.schema > "$S/rfc2307bis.schema"
  cat > "$S/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $S/rfc2307bis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload argon2
pidfile $S/slapd.pid
argsfile $S/slapd.args
loglevel 0
sizelimit 500

database mdb
maxsize 17179869184
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw $(slappasswd -s "$ADMIN_PW")
directory $S/db
index objectClass eq
index uid,cn,mail eq,sub
index uidNumber,gidNumber,member eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by self write
  by * read
EOF
  say "slapadd"
  run /usr/bin/time -f 'slapadd: %e s elapsed, %U s user, %S s sys, max RSS %M KiB' \
    slapadd -q -f "$S/slapd.conf" -l "$W/slapd.ldif"
  echo "database: $(du -k "$S/db/data.mdb" | cut -f1) KiB on disk (data.mdb is sparse, apparent size = maxsize)"
  say "slapd serve"
  slapd -d 0 -f "$S/slapd.conf" -h "ldap://127.0.0.1:$PORT/" > "$S/slapd.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  echo "slapd pid $SPID on $PORT; memory after start: $(mem "$SPID")"
  load "ldap://127.0.0.1:$PORT" "$SPID" uid
  kill -TERM "$SPID"; wait "$SPID" || true; PIDS=()
fi
