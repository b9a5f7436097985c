#!/usr/bin/env bash
# Produces the Kerberos figures of BENCHMARKS.md: AS (pre-authenticated login) and TGS
# throughput of dird's KDC and of MIT krb5kdc, same machine, same run, same principals and
# passwords, same load tool (dird-bench kdc-as / kdc-tgs).
# Usage: scripts/kdc-bench.sh USERS [WORKDIR]     (release build: cargo build --release --bins)
#   env: DURATION (20s), CLIENTS (16), TRANSPORTS ("udp tcp"), ROUNDS (1), CLIENT_THREADS (1),
#        MIT_WORKERS (2: also measure the tuned MIT KDC with `krb5kdc -w N`; empty: don't)
# MIT is measured twice (three times with MIT_WORKERS): as ../shared/lab/mitkdc.sh configures it
# (its defaults: every pre-authenticated login writes the principal's last-success time to the
# database), and "tuned" (disable_last_success, disable_lockout: no database write per login),
# which is the fairer comparison for dird, which writes nothing per login.
# Every server started here is stopped by its PID. Not part of the test suite.
set -euo pipefail
USERS=$1
W=${2:-/tmp/dird-kdcbench-$USERS}
DURATION=${DURATION:-20s} CLIENTS=${CLIENTS:-16} TRANSPORTS=${TRANSPORTS:-udp tcp} ROUNDS=${ROUNDS:-1}
MIT_WORKERS=${MIT_WORKERS-2} CLIENT_THREADS=${CLIENT_THREADS:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
REALM=EXAMPLE.COM
USER_PW=Bench-Passw0rd!
SERVICE=host/bench.example.com
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
say() { printf '\n### %s   [loadavg %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# A port free for both TCP and UDP (a KDC listens on both), below the ephemeral range (32768+)
# so that the load's own client sockets cannot take it between runs.
rport() { local p; while :; do p=$((20000 + RANDOM % 12000)); ss -Hlntu "( sport = :$p )" | grep -q . || { echo "$p"; return; }; done; }
mem() { grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$1/status" | tr -s ' \t' ' ' | paste -sd' '; }
cpu() { awk '{print "cpu " ($14+$15)/100 " s (user+sys)"}' "/proc/$1/stat"; }
for t in krb5kdc kdb5_util kadmin.local; do
  command -v "$t" >/dev/null || { echo "FAIL: $t missing: apt-get install krb5-kdc krb5-admin-server" >&2; exit 1; }
done

mkdir -p "$W"
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(rustc -V)"
echo "MIT krb5kdc: $(dpkg-query -W -f '${Version}' krb5-kdc)"

# --- dird: provision, users with plaintext passwords (import derives their keys), service
D=$W/dird; rm -rf "$D"; mkdir -p "$D"
DPORT=$(rport); KPPORT=$(rport); LPORT=$(rport)
cat > "$D/dird.toml" <<EOF
mode = "standalone"
tier = "enterprise"
data_dir = "$D/data"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:$LPORT"]
ldaps_listen = []
[kdc]
listen = ["127.0.0.1:$DPORT"]
kpasswd_listen = ["127.0.0.1:$KPPORT"]
EOF
export DIRD_ADMIN_PASSWORD=Bench-Admin-Passw0rd! DIRD_LOG=warn
say "dird: generate $USERS users (plaintext password), init, import, keytab"
run "$BIN/dird-bench" gen --users "$USERS" --groups 0 --plaintext-password --out "$W/users.ldif"
run "$BIN/dird" --config "$D/dird.toml" init >/dev/null
run /usr/bin/time -f 'import: %e s elapsed, %U s user' "$BIN/dird" --config "$D/dird.toml" import "$W/users.ldif"
run "$BIN/dird" --config "$D/dird.toml" keytab --principal "$SERVICE" --out "$D/bench.keytab"

# --- MIT: the same principals and passwords, preauth required (as ../shared/lab/mitkdc.sh)
M=$W/mit; rm -rf "$M"; mkdir -p "$M"
MPORT=$(rport)
cat > "$M/kdc.conf" <<EOF
[kdcdefaults]
  kdc_listen = 127.0.0.1:$MPORT
  kdc_tcp_listen = 127.0.0.1:$MPORT
[realms]
  $REALM = {
    database_name = $M/principal
    key_stash_file = $M/stash
    acl_file = $M/kadm5.acl
    kdc_listen = 127.0.0.1:$MPORT
    kdc_tcp_listen = 127.0.0.1:$MPORT
    max_life = 10h
    max_renewable_life = 7d
    default_principal_flags = +preauth
  }
[logging]
  kdc = FILE:$M/kdc.log
EOF
cp "$M/kdc.conf" "$M/kdc-tuned.conf"
cat >> "$M/kdc-tuned.conf" <<EOF
[dbmodules]
  $REALM = {
    disable_last_success = true
    disable_lockout = true
  }
EOF
: > "$M/kadm5.acl"
export KRB5_KDC_PROFILE=$M/kdc.conf
say "MIT: kdb5_util create, addprinc $USERS users + $SERVICE"
run kdb5_util create -r "$REALM" -s -P master-bench >/dev/null
{ for n in $(seq 1 "$USERS"); do echo "addprinc -pw $USER_PW user$n"; done
  echo "addprinc -randkey $SERVICE"; } > "$M/addprinc.txt"
run /usr/bin/time -f 'addprinc: %e s elapsed' kadmin.local -r "$REALM" < "$M/addprinc.txt" > "$M/kadmin.out" 2>&1
grep -c 'Principal "user' "$M/kadmin.out" | sed 's/^/MIT principals created: /'

start_dird() {
  "$BIN/dird" --config "$D/dird.toml" serve > "$D/serve.out" 2> "$D/serve.err" &
  SPID=$!; PIDS+=("$SPID")
  for _ in $(seq 1 600); do grep -q '^dird ready' "$D/serve.out" && break; sleep 0.1; done
  grep '^dird ready' "$D/serve.out" || { cat "$D/serve.err"; exit 1; }
  KDC=127.0.0.1:$DPORT
}
start_mit() {  # start_mit PROFILE [WORKERS]
  KRB5_KDC_PROFILE=$1 krb5kdc -n -r "$REALM" ${2:+-w "$2"} > "$M/kdc.out" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  for _ in $(seq 1 150); do ss -Hlnu "( sport = :$MPORT )" | grep -q . && break; sleep 0.1; done
  ss -Hlnu "( sport = :$MPORT )" | grep -q . || { cat "$M/kdc.out"; exit 1; }
  KDC=127.0.0.1:$MPORT
}
stop_server() {  # the server and, for krb5kdc -w, its worker processes
  local kids; kids=$(pgrep -P "$SPID" || true)
  kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; PIDS=()
  for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
}
# CPU ticks of the server (and of krb5kdc -w's worker processes).
ticks() { local t=0 p; for p in "$SPID" $(pgrep -P "$SPID" || true); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
phase() {  # phase DIRD-BENCH-ARGS...: one load run, then the server's CPU time per op
  local t0 out ops cpu
  t0=$(ticks)
  printf '$ dird-bench %s\n' "$*"
  out=$(/usr/bin/time -f 'client CPU: %U s user, %S s sys' "$BIN/dird-bench" "$@" 2>&1)
  cpu=$(( $(ticks) - t0 ))
  echo "$out" | grep -v '^derived'
  ops=$(echo "$out" | sed -n 's/.*: \([0-9]*\) ok,.*/\1/p')
  awk -v c="$cpu" -v o="${ops:-0}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (o > 0) printf "server CPU: %.2f s, %.1f us per op\n", c / hz, c / hz * 1e6 / o }'
}
measure() {  # measure NAME
  local t
  echo "memory after start: $(mem "$SPID")"
  say "$1: warm-up (5 s logins over UDP, not a figure)"
  run "$BIN/dird-bench" kdc-as --kdc "$KDC" --users "$USERS" --clients "$CLIENTS" --duration 5s
  for t in $TRANSPORTS; do
    say "$1: AS over $t"
    phase kdc-as --kdc "$KDC" --transport "$t" --users "$USERS" --clients "$CLIENTS" \
      --duration "$DURATION" --threads "$CLIENT_THREADS"
    say "$1: TGS over $t"
    phase kdc-tgs --kdc "$KDC" --transport "$t" --users "$USERS" --clients "$CLIENTS" \
      --duration "$DURATION" --threads "$CLIENT_THREADS" --service "$SERVICE"
  done
  echo "server after the load: $(mem "$SPID"), $(cpu "$SPID")"
  for c in $(pgrep -P "$SPID" || true); do echo "  worker $c: $(cpu "$c")"; done
}

# MIT logs every request to kdc.log (as mitkdc.sh configures it): ~400 MB per run.
trap 'cleanup; rm -f "$M/kdc.log"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  say "round $r: dird"
  start_dird; measure "dird"; stop_server
  say "round $r: MIT krb5kdc (mitkdc.sh configuration)"
  start_mit "$M/kdc.conf"; measure "MIT"; stop_server
  say "round $r: MIT krb5kdc tuned (disable_last_success, disable_lockout)"
  start_mit "$M/kdc-tuned.conf"; measure "MIT tuned"; stop_server
  if [ -n "$MIT_WORKERS" ]; then
    say "round $r: MIT krb5kdc tuned, -w $MIT_WORKERS worker processes"
    start_mit "$M/kdc-tuned.conf" "$MIT_WORKERS"; measure "MIT tuned -w $MIT_WORKERS"; stop_server
  fi
done
