#!/usr/bin/env bash
# Cluster mode (issue 17) against standalone, same data and load: indexed searches on each
# node, and modifies (writes) with their latency, with a 3-member etcd on this machine.
# Usage: scripts/bench-cluster.sh [USERS] [WORKDIR]   env: DURATION (10s), CONNECTIONS (8),
#        BIN (dird binaries; default target/debug, whose figures are only comparable with
#        each other). Needs etcd-server and etcd-client. Every process started here is stopped
#        by its PID. Not part of the test suite.
set -euo pipefail
USERS=${1:-2000}
W=${2:-/tmp/dird-bench-cluster}
DURATION=${DURATION:-10s} CONNS=${CONNECTIONS:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/debug}
BASE=dc=example,dc=com
ADMIN_DN="cn=Administrator,cn=Users,$BASE"
export DIRD_ADMIN_PASSWORD='Bench-Admin-Passw0rd!'
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
rport() { local p; while :; do p=$((20000 + RANDOM % 30000)); ss -Hltn "( sport = :$p )" | grep -q . || { echo "$p"; return; }; done; }
say() { printf '\n### %s   [loadavg %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
rm -rf "$W" && mkdir -p "$W"
"$BIN/dird-bench" gen --users "$USERS" --no-passwords --out "$W/users.ldif" >/dev/null

config() {  # config NAME [CLUSTER-SECTION]
  mkdir -p "$W/$1"
  cat > "$W/$1/dird.toml" <<CFG
data_dir = "$W/$1/data"
[domain]
name = "example.com"
dc_hostname = "dc1.example.com"
[ldap]
listen = ["127.0.0.1:0"]
ldaps_listen = []
${2:-}
CFG
}
serve() {  # serve NAME -> sets URL
  "$BIN/dird" --config "$W/$1/dird.toml" serve > "$W/$1/out" 2> "$W/$1/err" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q '^dird ready' "$W/$1/out" 2>/dev/null && break; sleep 0.1; done
  URL=ldap://$(grep -o ' ldap=[0-9.:]*' "$W/$1/out" | head -1 | cut -d= -f2)
}
load() {  # load URL LABEL
  say "$2: search (uid=userN), $CONNS connections"
  "$BIN/dird-bench" search --url "$1" --bind-dn "$ADMIN_DN" --password "$DIRD_ADMIN_PASSWORD" \
    --connections "$CONNS" --duration "$DURATION" --users "$USERS" --warmup 2s
}
write() {  # write URL LABEL
  say "$2: modify (replace description), $CONNS connections"
  "$BIN/dird-bench" modify --url "$1" --bind-dn "$ADMIN_DN" --password "$DIRD_ADMIN_PASSWORD" \
    --connections "$CONNS" --duration "$DURATION" --users "$USERS"
}

# Standalone
config solo
"$BIN/dird" --config "$W/solo/dird.toml" init >/dev/null
"$BIN/dird" --config "$W/solo/dird.toml" import "$W/users.ldif" >/dev/null
serve solo; SOLO=$URL
load "$SOLO" standalone
write "$SOLO" standalone

# 3 etcd members
CLUSTER_PEERS="" ENDPOINTS=""
declare -a CP PP
for i in 0 1 2; do CP[$i]=$(rport); PP[$i]=$(rport); done
for i in 0 1 2; do
  CLUSTER_PEERS+="${CLUSTER_PEERS:+,}e$i=http://127.0.0.1:${PP[$i]}"
  ENDPOINTS+="${ENDPOINTS:+, }\"http://127.0.0.1:${CP[$i]}\""
done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$W/etcd$i" --listen-client-urls "http://127.0.0.1:${CP[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${CP[$i]}" --listen-peer-urls "http://127.0.0.1:${PP[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PP[$i]}" --initial-cluster "$CLUSTER_PEERS" \
    > "$W/etcd$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${CP[0]}" endpoint health >/dev/null 2>&1 && break; sleep 0.2; done

# Node A: the same import, then `cluster init`; node B: `cluster join`
config a
"$BIN/dird" --config "$W/a/dird.toml" init >/dev/null
"$BIN/dird" --config "$W/a/dird.toml" import "$W/users.ldif" >/dev/null
config a "[cluster]
etcd = [$ENDPOINTS]
node_name = \"a\""
config b "[cluster]
etcd = [$ENDPOINTS]
node_name = \"b\""
"$BIN/dird" --config "$W/a/dird.toml" cluster init
mkdir -p "$W/b/data" && chmod 700 "$W/b/data" && install -m 0600 "$W/a/data/master.key" "$W/b/data/"
"$BIN/dird" --config "$W/b/dird.toml" cluster join
serve a; A=$URL
serve b; B=$URL
load "$A" "cluster node a"
load "$B" "cluster node b"
write "$A" "cluster node a (3 etcd members)"
