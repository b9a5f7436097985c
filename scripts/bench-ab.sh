#!/bin/bash
# A/B comparison of two dird builds on a shared machine, where absolute numbers are noise:
# the same LDIF imported by each (import time), both served at once (pinned to CPU 0), the
# same dird-bench load (pinned to CPU 1) against A then B, alternating, ROUNDS times; compare
# the medians of the RESULT lines in WORKDIR/results.tsv (ratios, not absolute figures).
#
# usage: A=DIR_WITH_OLD_DIRD B=DIR_WITH_NEW_DIRD LOADGEN=PATH_TO_DIRD_BENCH DATA=LDIF \
#          scripts/bench-ab.sh WORKDIR ROUNDS DURATION WORKLOADS
#   WORKLOADS: comma-separated of search, sssd, substring, bind-repeat
#   DATA: `dird-bench gen --flavor openldap --users 18000 --groups 2000 --out DATA`
#   (USERS must match; NOIMPORT=1 reuses WORKDIR's databases). Servers are stopped by PID.
set -euo pipefail
W=$1 ROUNDS=$2 DUR=$3 WORKLOADS=$4
A=${A:?set A to the directory of the old dird} B=${B:?set B to the directory of the new dird}
LOADGEN=${LOADGEN:?set LOADGEN to a dird-bench binary}
DATA=${DATA:?set DATA to an LDIF from dird-bench gen --flavor openldap}
USERS=${USERS:-18000}
export DIRD_ADMIN_PASSWORD='Bench-Admin-Passw0rd!' DIRD_LOG=warn
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p "$W"; : > "$W/results.tsv"
declare -A URL
for v in a b; do
  bin=$A; [ $v = b ] && bin=$B
  D=$W/$v
  if [ -z "${NOIMPORT:-}" ]; then
  rm -rf "$D"; mkdir -p "$D"
  cat > "$D/dird.toml" <<EOT
mode = "standalone"
tier = "enterprise"
data_dir = "$D/data"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:0"]
ldaps_listen = ["127.0.0.1:0"]
EOT
  "$bin/dird" --config "$D/dird.toml" init >/dev/null
    /usr/bin/time -f '%e %U' -o "$D/import.time" taskset -c 0 "$bin/dird" --config "$D/dird.toml" import "$DATA" >/dev/null 2>&1
    echo "import $v $(cat "$D/import.time")" | tee -a "$W/results.tsv"
  fi
  taskset -c 0 "$bin/dird" --config "$D/dird.toml" serve > "$D/serve.out" 2> "$D/serve.err" &
  PIDS+=($!); echo "$v pid $!" >&2
  for _ in $(seq 1 600); do grep -q '^dird ready' "$D/serve.out" && break; sleep 0.1; done
  URL[$v]=ldap://$(sed -n 's/^dird ready ldap=\([^ ,]*\).*/\1/p' "$D/serve.out" | head -1)
done
U1="uid=user1,ou=People,dc=example,dc=com"; TPL="uid=user{},ou=People,dc=example,dc=com"
args() {
  local c=(--url "$2" --connections 16 --duration "$DUR" --warmup 2s --users "$USERS" --threads 1)
  case $1 in
    search) echo search "${c[@]}" --bind-dn $U1 --password Bench-Passw0rd! --attrs uid,cn,mail,uidNumber ;;
    sssd) echo sssd "${c[@]}" --bind-dn $U1 --password Bench-Passw0rd! ;;
    substring) echo substring "${c[@]}" --bind-dn $U1 --password Bench-Passw0rd! --size-limit 100 ;;
    bind-repeat) echo bind-repeat "${c[@]}" --dn-template $TPL --pool 100 ;;
  esac
}
IFS=, read -r -a WL <<< "$WORKLOADS"
for w in "${WL[@]}"; do for r in $(seq 1 "$ROUNDS"); do for v in a b; do
  out=$W/$w-$r-$v.out
  # shellcheck disable=SC2046
  taskset -c 1 "$LOADGEN" $(args "$w" "${URL[$v]}") > "$out" 2>&1 || true
  line=$(grep '^RESULT' "$out" || echo "RESULT failed")
  echo "$w $r $v $line [load $(cut -d' ' -f1 /proc/loadavg)]" | tee -a "$W/results.tsv"
done; done; done
