#!/usr/bin/env bash
# Pinned, alternating comparison of dird with OpenLDAP slapd (issue 14): the same directory
# as OpenLDAP holds it (dird-bench gen --flavor openldap), imported into both, both servers
# pinned to one core (taskset -c $SERVER_CPU), the load generator to the other ($LOAD_CPU);
# every workload runs dird, slapd, dird, slapd, ... for --rounds rounds; the report gives the
# medians of ops/s, p50, p99 and p99.9 per server and the ratio dird/slapd, plus import time,
# database size on disk and resident memory after start and after the load, as a markdown
# table (stdout and WORKDIR/report.md; raw per-run output in WORKDIR/runs/).
#
# Usage: scripts/bench-pin.sh [options] [WORKDIR]        (also: scripts/bench.sh --pin ...)
#   --scale 20k|495k     20k: 18,000 users + 2,000 groups; 495k: 450,000 users + 45,000
#                        groups (plus ou=People, ou=Groups and the base). Default 20k.
#   --users N --groups G instead of --scale
#   --members M          members per group (default 20)
#   --rounds R           rounds per workload (default 3)
#   --duration D         measured time per run (default 20s)
#   --warmup W           unmeasured time before each run (default 3s)
#   --connections C      concurrent connections (default 16)
#   --workloads LIST     comma separated, default search,sssd,substring,bind,bind-repeat,modify,mixed
#   --dird-passwords P   argon2 (default): dird imports the LDIF with one precomputed {ARGON2}
#                        value for every user; ssha: the very LDIF slapd gets, {SSHA} per
#                        user (needs dird's OpenLDAP password-scheme import)
#   --import-nopw        also time both imports of the LDIF without passwords (issue 14's
#                        "passwords removed" row) into scratch databases
#   WORKDIR              default /tmp/dird-bench-pin-<users>
# env: BIN (dird binaries, default target/release: cargo build --release --bins),
#      SERVER_CPU (0), LOAD_CPU (1).
# Every server started here is stopped by its PID (trap on exit). Not part of the test suite.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SERVER_CPU=${SERVER_CPU:-0} LOAD_CPU=${LOAD_CPU:-1}
SCALE=20k USERS= GROUPS_N= MEMBERS=20 ROUNDS=3 DURATION=20s WARMUP=3s CONNS=16
WORKLOADS=search,sssd,substring,bind,bind-repeat,modify,mixed
DIRD_PW=argon2 IMPORT_NOPW= W=

die() { echo "bench-pin: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=$2; shift 2 ;;
    --users) USERS=$2; shift 2 ;;
    --groups) GROUPS_N=$2; shift 2 ;;
    --members) MEMBERS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --dird-passwords) DIRD_PW=$2; shift 2 ;;
    --import-nopw) IMPORT_NOPW=1; shift ;;
    -h|--help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) W=$1; shift ;;
  esac
done
if [ -z "$USERS" ]; then
  case $SCALE in
    20k) USERS=18000 GROUPS_N=2000 ;;
    495k) USERS=450000 GROUPS_N=45000 ;;
    *) die "--scale must be 20k or 495k (or give --users and --groups)" ;;
  esac
fi
GROUPS_N=${GROUPS_N:-$((USERS / 10))}
case $DIRD_PW in argon2|ssha) ;; *) die "--dird-passwords must be argon2 or ssha" ;; esac
[ "$ROUNDS" -ge 1 ] 2>/dev/null || die "--rounds must be a positive number"
W=${W:-/tmp/dird-bench-pin-$USERS}

# --- prerequisites, with clear errors -------------------------------------------------------
for t in taskset ss awk; do command -v "$t" >/dev/null || die "$t is missing (util-linux / iproute2 / gawk)"; done
for t in slapd slapadd slappasswd; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
    die "$t is missing: apt-get install -y slapd (a /usr/sbin/policy-rc.d that exits 101 keeps the package's own slapd from starting)"
done
export PATH=$PATH:/usr/sbin
[ -f /etc/ldap/schema/nis.schema ] || die "/etc/ldap/schema/nis.schema is missing (Debian's slapd package ships it)"
[ -e /usr/lib/ldap/back_mdb.so ] || die "/usr/lib/ldap/back_mdb.so is missing (Debian's slapd package ships it)"
for b in dird dird-bench; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing: cargo build --release --bins (or set BIN)"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install -y time"
NCPU=$(nproc --all)
[ "$SERVER_CPU" != "$LOAD_CPU" ] || die "SERVER_CPU and LOAD_CPU must differ"
[ "$SERVER_CPU" -lt "$NCPU" ] && [ "$LOAD_CPU" -lt "$NCPU" ] || die "needs CPUs $SERVER_CPU and $LOAD_CPU; this machine has $NCPU"

BASE=dc=example,dc=com
ADMIN_PW='Bench-Admin-Passw0rd!'
USER_PW='Bench-Passw0rd!'
USER_TPL="uid=user{},ou=People,$BASE"
USER1="uid=user1,ou=People,$BASE"
DIRD_ADMIN="cn=Administrator,cn=Users,$BASE"
SLAPD_ADMIN="cn=admin,$BASE"

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
say() { printf '\n### %s   [loadavg %s]\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
rport() { local p; while :; do p=$((20000 + RANDOM % 30000)); ss -Hltn "( sport = :$p )" | grep -q . || { echo "$p"; return; }; done; }
rss_mib() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
secs() { awk '/^elapsed / { print $2 }' "$1"; }

mkdir -p "$W/runs"
rm -f "$W"/runs/*.out
RES=$W/results.tsv; : > "$RES"
FACTS=$W/facts.tsv; : > "$FACTS"   # key <tab> dird <tab> slapd
fact() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$FACTS"; }
MACHINE="$NCPU CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(free -g | awk '/^Mem:/ { print $2 }') GiB, $(uname -r); slapd $(slapd -VV 2>&1 | sed -n 's/.*slapd \([0-9.]*\).*/\1/p' | head -1)"
echo "machine: $MACHINE; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU" >&2

# --- data -----------------------------------------------------------------------------------
say "generate $USERS users, $GROUPS_N groups ($MEMBERS members each)"
G=(--users "$USERS" --groups "$GROUPS_N" --members "$MEMBERS" --flavor openldap)
DATA=$W/data-$USERS-$GROUPS_N-$MEMBERS.ldif            # {SSHA} per user: slapd (and dird with ssha)
[ -s "$DATA" ] || run "$BIN/dird-bench" gen "${G[@]}" --out "$DATA"
if [ "$DIRD_PW" = argon2 ]; then
  DDATA=$W/data-$USERS-$GROUPS_N-$MEMBERS-argon2.ldif   # the same with one {ARGON2} value
  if [ ! -s "$DDATA" ]; then
    run "$BIN/dird-bench" gen --users 1 --groups 0 --out "$W/hash.ldif"
    HASH=$(grep -m1 '^userPassword: ' "$W/hash.ldif" | cut -d' ' -f2)
    run "$BIN/dird-bench" gen "${G[@]}" --password-hash "$HASH" --out "$DDATA"
  fi
else
  DDATA=$DATA
fi
NOPW=$W/data-$USERS-$GROUPS_N-$MEMBERS-nopw.ldif
[ -z "$IMPORT_NOPW" ] || [ -s "$NOPW" ] || run "$BIN/dird-bench" gen "${G[@]}" --no-passwords --out "$NOPW"
# slapadd needs the base entry; dird import runs on a provisioned domain, where it exists.
printf 'dn: %s\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n' \
  "$BASE" > "$W/base.ldif"
ls -l "$W"/*.ldif >&2

# --- slapd: config, slapadd -----------------------------------------------------------------
slapd_conf() {  # DIR: writes DIR/slapd.conf and DIR/db
  local S=$1
  rm -rf "$S"; mkdir -p "$S/db"
  # posixGroup beside groupOfNames needs rfc2307bis (posixGroup AUXILIARY); Debian ships
  # RFC 2307's nis.schema (STRUCTURAL), so derive the bis variant from it.
  sed "/NAME 'posixGroup'/,/^\$/ s/STRUCTURAL/AUXILIARY/" /etc/ldap/schema/nis.schema > "$S/rfc2307bis.schema"
  grep -A3 "NAME 'posixGroup'" "$S/rfc2307bis.schema" | grep -q AUXILIARY || die "could not derive rfc2307bis.schema"
  cat > "$S/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $S/rfc2307bis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $S/slapd.pid
argsfile $S/slapd.args
loglevel 0
sizelimit 500

database mdb
maxsize 17179869184
suffix "$BASE"
rootdn "$SLAPD_ADMIN"
rootpw $(slappasswd -s "$ADMIN_PW")
directory $S/db
index objectClass eq
index uid eq
index cn eq,sub
index memberUid eq
index member eq
index mail eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by self write
  by * read
EOF
  slaptest -u -f "$S/slapd.conf" >/dev/null 2>&1 || { slaptest -u -f "$S/slapd.conf" || true; die "slaptest rejected $S/slapd.conf"; }
}
slapadd_timed() {  # DIR LDIF TIMEFILE
  say "slapadd $(basename "$2") (pinned to CPU $SERVER_CPU)"
  cat "$W/base.ldif" "$2" | run taskset -c "$SERVER_CPU" /usr/bin/time -f 'elapsed %e\nuser %U\nsys %S\nmaxrss_kib %M' -o "$3" \
    slapadd -q -f "$1/slapd.conf" || die "slapadd failed"
  echo "slapadd: $(secs "$3") s" >&2
}

# --- dird: config, init, import -------------------------------------------------------------
dird_conf() {  # DIR
  local D=$1
  rm -rf "$D"; mkdir -p "$D"
  cat > "$D/dird.toml" <<EOF
mode = "standalone"
tier = "enterprise"
data_dir = "$D/data"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:0"]
ldaps_listen = ["127.0.0.1:0"]
# slapd's index set: substring (trigram) index on cn only, as slapd's `cn eq,sub`
[index]
substring_defaults = false
substring = ["cn"]
EOF
  run "$BIN/dird" --config "$D/dird.toml" init >/dev/null || die "dird init failed"
}
dird_import_timed() {  # DIR LDIF TIMEFILE
  say "dird import $(basename "$2") (pinned to CPU $SERVER_CPU)"
  run taskset -c "$SERVER_CPU" /usr/bin/time -f 'elapsed %e\nuser %U\nsys %S\nmaxrss_kib %M' -o "$3" \
    "$BIN/dird" --config "$1/dird.toml" import "$2" >&2 || die "dird import failed"
  echo "dird import: $(secs "$3") s" >&2
}
export DIRD_ADMIN_PASSWORD=$ADMIN_PW DIRD_LOG=warn

S=$W/slapd D=$W/dird
slapd_conf "$S"; slapadd_timed "$S" "$DATA" "$W/slapadd.time"
dird_conf "$D"; dird_import_timed "$D" "$DDATA" "$W/dird-import.time"
fact import_s "$(secs "$W/dird-import.time")" "$(secs "$W/slapadd.time")"
if [ -n "$IMPORT_NOPW" ]; then
  slapd_conf "$W/slapd-nopw"; slapadd_timed "$W/slapd-nopw" "$NOPW" "$W/slapadd-nopw.time"
  dird_conf "$W/dird-nopw"; dird_import_timed "$W/dird-nopw" "$NOPW" "$W/dird-import-nopw.time"
  fact import_nopw_s "$(secs "$W/dird-import-nopw.time")" "$(secs "$W/slapadd-nopw.time")"
  rm -rf "$W/slapd-nopw" "$W/dird-nopw"
fi
# Allocated blocks (data.mdb is sparse: its apparent size is maxsize).
fact disk_mb "$(du -k "$D/data/dird.redb" | awk '{ printf "%.1f", $1 / 1024 }')" \
  "$(du -k "$S/db/data.mdb" | awk '{ printf "%.1f", $1 / 1024 }')"

# --- servers (both pinned to SERVER_CPU; only the one under load is busy) -------------------
say "start dird and slapd on CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" "$BIN/dird" --config "$D/dird.toml" serve > "$D/serve.out" 2> "$D/serve.err" &
DPID=$!; PIDS+=("$DPID")
for _ in $(seq 1 1200); do grep -q '^dird ready' "$D/serve.out" && break; kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
grep -q '^dird ready' "$D/serve.out" || { tail -20 "$D/serve.err" >&2; die "dird did not get ready"; }
DURL=ldap://$(sed -n 's/^dird ready ldap=\([^ ,]*\).*/\1/p' "$D/serve.out" | head -1)
SPORT=$(rport)
taskset -c "$SERVER_CPU" slapd -d 0 -f "$S/slapd.conf" -h "ldap://127.0.0.1:$SPORT/" > "$S/slapd.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null && break; kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
(exec 3<>"/dev/tcp/127.0.0.1/$SPORT") 2>/dev/null || { tail -20 "$S/slapd.log" >&2; die "slapd is not listening on $SPORT"; }
SURL=ldap://127.0.0.1:$SPORT
echo "dird pid $DPID $DURL; slapd pid $SPID $SURL" >&2
fact rss_start_mib "$(rss_mib "$DPID")" "$(rss_mib "$SPID")"

# --- the load -------------------------------------------------------------------------------
# workload_args WORKLOAD SERVER: the dird-bench arguments (identical for both servers but for
# the URL and the administrator, who is the one writing in modify and mixed).
workload_args() {
  local url admin
  if [ "$2" = dird ]; then url=$DURL admin=$DIRD_ADMIN; else url=$SURL admin=$SLAPD_ADMIN; fi
  local common=(--url "$url" --connections "$CONNS" --duration "$DURATION" --warmup "$WARMUP"
                --users "$USERS" --threads 1)
  local as_user=(--bind-dn "$USER1" --password "$USER_PW")
  local as_admin=(--bind-dn "$admin" --password "$ADMIN_PW")
  case $1 in
    search) echo search "${common[@]}" "${as_user[@]}" --attrs uid,cn,mail,uidNumber ;;
    sssd) echo sssd "${common[@]}" "${as_user[@]}" ;;
    substring) echo substring "${common[@]}" "${as_user[@]}" --size-limit 100 ;;
    bind) echo bind "${common[@]}" --dn-template "$USER_TPL" ;;
    bind-repeat) echo bind-repeat "${common[@]}" --dn-template "$USER_TPL" --pool 100 ;;
    modify) echo modify "${common[@]}" "${as_admin[@]}" --dn-template "$USER_TPL" ;;
    mixed) echo mixed "${common[@]}" "${as_admin[@]}" --dn-template "$USER_TPL" --attrs uid,cn,mail,uidNumber --modify-percent 10 ;;
    *) die "unknown workload $1" ;;
  esac
}
IFS=, read -r -a WL <<< "$WORKLOADS"
for w in "${WL[@]}"; do workload_args "$w" dird >/dev/null; done
for w in "${WL[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    for srv in dird slapd; do
      say "$w, round $r/$ROUNDS: $srv"
      out=$W/runs/$w-$r-$srv.out
      # Arguments hold no spaces (DNs, passwords and URLs here have none).
      # shellcheck disable=SC2046
      run taskset -c "$LOAD_CPU" "$BIN/dird-bench" $(workload_args "$w" "$srv") > "$out" 2>&1 ||
        echo "dird-bench $w against $srv failed (see $out)" >&2
      grep -v '^RESULT ' "$out" >&2 || true
      awk -v w="$w" -v s="$srv" -v r="$r" '/^RESULT / {
          for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w, s, r, v["ops"], v["p50_ms"], v["p99_ms"], v["p999_ms"], v["errors"]
          found = 1 }
        END { if (!found) printf "%s\t%s\t%s\tNA\tNA\tNA\tNA\tNA\n", w, s, r }' "$out" >> "$RES"
    done
  done
done
fact rss_load_mib "$(rss_mib "$DPID")" "$(rss_mib "$SPID")"
cleanup

# --- report ---------------------------------------------------------------------------------
{
  echo "Machine: $MACHINE. Servers pinned to CPU $SERVER_CPU, \`dird-bench\` (one thread) to CPU $LOAD_CPU;"
  echo "$USERS users + $GROUPS_N groups ($MEMBERS members each) + 3 = $((USERS + GROUPS_N + 3)) objects;"
  echo "$CONNS connections, $WARMUP warm-up + $DURATION measured per run, $ROUNDS round(s) alternating dird, slapd;"
  echo "medians over the rounds; latency in ms (p50 / p99 / p99.9). dird passwords: $DIRD_PW; slapd: {SSHA}."
  echo
  awk -F'\t' -v wl="$WORKLOADS" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      if (n == 0) return "NA"
      for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(k, v) { if (v != "NA") L[k] = L[k] " " v }
    function cell(w, s,   e) {
      if (!((w, s, "ops") in L)) return "no result | "
      e = (err[w, s] > 0) ? sprintf(" (%d errors)", err[w, s]) : ""
      if (failed[w, s] > 0) e = e sprintf(" (%d failed runs)", failed[w, s])
      return sprintf("%.1f%s | %.2f / %.2f / %.2f", median(L[w, s, "ops"]), e,
        median(L[w, s, "p50"]), median(L[w, s, "p99"]), median(L[w, s, "p999"]))
    }
    { add($1 SUBSEP $2 SUBSEP "ops", $4); add($1 SUBSEP $2 SUBSEP "p50", $5)
      add($1 SUBSEP $2 SUBSEP "p99", $6); add($1 SUBSEP $2 SUBSEP "p999", $7)
      if ($8 == "NA") failed[$1, $2]++; else err[$1, $2] += $8 }
    END {
      print "| workload | slapd ops/s | slapd ms | dird ops/s | dird ms | ratio dird/slapd |"
      print "|---|---|---|---|---|---|"
      n = split(wl, ws, ",")
      for (i = 1; i <= n; i++) {
        w = ws[i]; d = median(L[w, "dird", "ops"]); s = median(L[w, "slapd", "ops"])
        ratio = (d != "NA" && s != "NA" && s > 0) ? sprintf("%.2f", d / s) : "NA"
        printf "| %s | %s | %s | %s |\n", w, cell(w, "slapd"), cell(w, "dird"), ratio
      }
    }' "$RES"
  awk -F'\t' '
    function row(label, s, d, unit, ratio) {
      printf "| %s | %s%s | | %s%s | | %s |\n", label, s, unit, d, unit, ratio
    }
    $1 == "import_s" { row("import (dird import vs slapadd, pinned)", $3, $2, " s", ($3 > 0) ? sprintf("%.2f", $2 / $3) : "NA") }
    $1 == "import_nopw_s" { row("import, passwords removed", $3, $2, " s", ($3 > 0) ? sprintf("%.2f", $2 / $3) : "NA") }
    $1 == "disk_mb" { row("database on disk (allocated)", $3, $2, " MiB", ($3 > 0) ? sprintf("%.2f", $2 / $3) : "NA") }
    $1 == "rss_start_mib" { row("RSS after start", $3, $2, " MiB", ($3 > 0) ? sprintf("%.2f", $2 / $3) : "NA") }
    $1 == "rss_load_mib" { row("RSS after the load", $3, $2, " MiB", ($3 > 0) ? sprintf("%.2f", $2 / $3) : "NA") }
  ' "$FACTS"
} > "$W/report.md"
echo >&2
cat "$W/report.md"
