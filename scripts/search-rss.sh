#!/usr/bin/env bash
# dird's memory during one large non-paged search (issue 15 §3, RELIABILITY.md "Streaming
# large searches"): starts `DIRD` (default target/debug/dird) on an existing config whose
# data directory already holds the entries, takes its VmRSS after a one-entry search, then
# runs `ldapsearch` as Administrator for BASE/FILTER (all user attributes, output counted
# and discarded) while sampling dird's VmRSS every 100 ms; prints entries, time and RSS.
#
#   target/debug/dird-bench gen --users 100000 --groups 0 --members 0 --no-passwords --out u.ldif
#   target/debug/dird --config dird.toml import u.ldif       # dird.toml: [ldap] time_limit_secs = 600
#   DIRD_ADMIN_PASSWORD=... ./scripts/search-rss.sh dird.toml ou=People,dc=example,dc=com '(objectClass=posixAccount)'
set -euo pipefail
CONFIG="$1"; BASE="$2"; FILTER="$3"
DIRD="${DIRD:-target/debug/dird}"
: "${DIRD_ADMIN_PASSWORD:?set DIRD_ADMIN_PASSWORD}"
ADMIN="cn=Administrator,cn=Users,dc=example,dc=com"
out=$(mktemp -d)
DIRD_LOG=warn "$DIRD" --config "$CONFIG" serve >"$out/stdout" 2>"$out/stderr" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 600); do grep -q '^dird ready' "$out/stdout" && break; sleep 0.1; done
url="ldap://$(grep -o 'ldap=[^ ,]*' "$out/stdout" | head -1 | cut -d= -f2)"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
LDAPCONF=/dev/null ldapsearch -x -LLL -H "$url" -D "$ADMIN" -w "$DIRD_ADMIN_PASSWORD" -b "$BASE" -z 1 "$FILTER" dn >/dev/null || true
quiet=$(rss)
peak=$quiet
start=$(date +%s.%N)
LDAPCONF=/dev/null ldapsearch -x -LLL -o ldif_wrap=no -H "$url" -D "$ADMIN" -w "$DIRD_ADMIN_PASSWORD" \
  -b "$BASE" "$FILTER" 2>"$out/ldapsearch.err" | grep -c '^dn: ' >"$out/count" &
search=$!
while kill -0 "$search" 2>/dev/null; do
  r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
  sleep 0.1
done
wait "$search" || true
end=$(date +%s.%N)
after=$(rss)
echo "entries $(cat "$out/count")  time $(echo "$end - $start" | bc) s  dird VmRSS quiet $((quiet / 1024)) MiB  peak $((peak / 1024)) MiB  after $((after / 1024)) MiB  growth $(((peak - quiet) / 1024)) MiB"
