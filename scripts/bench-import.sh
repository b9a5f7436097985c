#!/usr/bin/env bash
# Import time of the OpenLDAP-flavoured directory (issue 14's migration row): `slapadd -q`
# (back-mdb, the indexes of issue 14) against `dird import` of the very same LDIF ({SSHA}
# passwords as slapcat prints them), each pinned to one core, rounds alternating
# slapadd, dird (slapd's index set), dird (built-in index set), ...; prints the medians
# of the elapsed times, the user CPU time and the ratio to slapadd, as markdown.
#
# Usage: scripts/bench-import.sh [--users N] [--groups G] [--rounds R] [WORKDIR]
#   --users N    users (default 100000); --groups G groups (default users/10), 20 members each
#   --rounds R   rounds (default 3)
#   WORKDIR      default /tmp/dird-bench-import-<users>
# env: BIN (default target/release: cargo build --release --bin dird --bin dird-bench),
#      SERVER_CPU (0). The dird "slapd index set" config is what bench-pin.sh uses:
#      [index] substring_defaults = false, substring = ["cn"] (equality indexes unchanged).
# Not part of the test suite; starts no server.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
SERVER_CPU=${SERVER_CPU:-0}
USERS=100000 GROUPS_N= ROUNDS=3 W=
die() { echo "bench-import: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --users) USERS=$2; shift 2 ;;
    --groups) GROUPS_N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    -*) die "unknown option $1" ;;
    *) W=$1; shift ;;
  esac
done
GROUPS_N=${GROUPS_N:-$((USERS / 10))}
W=${W:-/tmp/dird-bench-import-$USERS}
export PATH=$PATH:/usr/sbin
for t in taskset slapadd slappasswd; do command -v "$t" >/dev/null || die "$t is missing (apt-get install -y slapd util-linux)"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install -y time"
for b in dird dird-bench; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing: cargo build --release --bin dird --bin dird-bench"; done
[ -f /etc/ldap/schema/nis.schema ] || die "/etc/ldap/schema/nis.schema is missing (Debian's slapd ships it)"

BASE=dc=example,dc=com
mkdir -p "$W"
DATA=$W/data-$USERS.ldif
[ -s "$DATA" ] || "$BIN/dird-bench" gen --users "$USERS" --groups "$GROUPS_N" --members 20 --flavor openldap --out "$DATA"
printf 'dn: %s\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n' "$BASE" > "$W/base.ldif"
sed "/NAME 'posixGroup'/,/^\$/ s/STRUCTURAL/AUXILIARY/" /etc/ldap/schema/nis.schema > "$W/rfc2307bis.schema"
timed() { /usr/bin/time -f 'elapsed %e\nuser %U\nsys %S\nmaxrss_kib %M' -o "$1" taskset -c "$SERVER_CPU" "${@:2}"; }
field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
export DIRD_ADMIN_PASSWORD='Bench-Admin-Passw0rd!' DIRD_LOG=warn

slapadd_run() {  # OUT
  local S=$W/slapd; rm -rf "$S"; mkdir -p "$S/db"
  cat > "$S/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include $W/rfc2307bis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 17179869184
suffix "$BASE"
rootdn "cn=admin,$BASE"
directory $S/db
index objectClass eq
index uid eq
index cn eq,sub
index memberUid eq
index member eq
index mail eq
EOF
  cat "$W/base.ldif" "$DATA" > "$W/slapd-input.ldif"
  timed "$1" slapadd -q -f "$S/slapd.conf" -l "$W/slapd-input.ldif" || die "slapadd failed"
  echo "disk_kib $(du -k "$S/db/data.mdb" | cut -f1)" >> "$1"
}
dird_run() {  # OUT slapd|builtin
  local D=$W/dird; rm -rf "$D"; mkdir -p "$D"
  cat > "$D/dird.toml" <<EOF
mode = "standalone"
tier = "enterprise"
data_dir = "$D/data"
[domain]
name = "example.com"
[ldap]
listen = ["127.0.0.1:0"]
EOF
  [ "$2" = builtin ] || printf '[index]\nsubstring_defaults = false\nsubstring = ["cn"]\n' >> "$D/dird.toml"
  "$BIN/dird" --config "$D/dird.toml" init > /dev/null || die "dird init failed"
  timed "$1" "$BIN/dird" --config "$D/dird.toml" import "$DATA" > /dev/null || die "dird import failed"
  echo "disk_kib $(du -k "$D/data/dird.redb" | cut -f1)" >> "$1"
}
for r in $(seq 1 "$ROUNDS"); do
  slapadd_run "$W/slapadd.$r"; echo "round $r slapadd $(field "$W/slapadd.$r" elapsed) s" >&2
  dird_run "$W/dird-slapd.$r" slapd; echo "round $r dird (slapd's indexes) $(field "$W/dird-slapd.$r" elapsed) s" >&2
  dird_run "$W/dird-builtin.$r" builtin; echo "round $r dird (built-in indexes) $(field "$W/dird-builtin.$r" elapsed) s" >&2
done
rm -rf "$W/slapd" "$W/dird" "$W/slapd-input.ldif"
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
med() { for r in $(seq 1 "$ROUNDS"); do field "$W/$1.$r" "$2"; done | median; }
S_E=$(med slapadd elapsed)
echo "$USERS users + $GROUPS_N groups (20 members each), $ROUNDS rounds, pinned to CPU $SERVER_CPU; medians"
echo
echo "| import | elapsed s | user s | sys s | max RSS MiB | on disk MiB | elapsed / slapadd |"
echo "|---|---|---|---|---|---|---|"
for k in slapadd dird-slapd dird-builtin; do
  case $k in slapadd) n='slapadd -q' ;; dird-slapd) n="dird import, slapd's index set" ;; *) n='dird import, built-in indexes' ;; esac
  E=$(med "$k" elapsed)
  printf '| %s | %s | %s | %s | %.0f | %.0f | %.2f |\n' "$n" "$E" "$(med "$k" user)" "$(med "$k" sys)" \
    "$(med "$k" maxrss_kib | awk '{ print $1 / 1024 }')" "$(med "$k" disk_kib | awk '{ print $1 / 1024 }')" \
    "$(awk -v a="$E" -v b="$S_E" 'BEGIN { print (b > 0) ? a / b : 0 }')"
done
