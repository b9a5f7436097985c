#!/usr/bin/env bash
# Fuzzing in CI (issue 15 item 1): builds every cargo-fuzz target in fuzz/ and runs each for
# FUZZ_SECONDS (default 60) from its committed seed corpus (fuzz/corpus/<target>, read only;
# new inputs go to target/fuzz-corpus/<target>). Any crash, leak, timeout or OOM fails the run;
# the reproducer is left in fuzz/artifacts/<target>/. Prints executions per target. The targets
# are every [[bin]] of fuzz/Cargo.toml (`cargo fuzz list`), sasl_token (SASL GSSAPI/SPNEGO
# tokens and the wrapped layer) included.
#
#   ./scripts/fuzz-ci.sh                 # every target, 60 s each
#   FUZZ_SECONDS=600 ./scripts/fuzz-ci.sh ldap_dispatch kdc_handle
#   FUZZ_RUNS=10000000 FUZZ_SECONDS=7200 ./scripts/fuzz-ci.sh   # the long run: 10^7
#                                        # executions per target (FUZZ_SECONDS caps each)
#
# The toolchain here is stable: cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses
# …), which RUSTC_BOOTSTRAP=1 admits on stable. Installs cargo-fuzz (crates.io) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${FUZZ_SECONDS:-60}"
# FUZZ_RUNS: stop each target after this many executions (else only the time bounds it).
RUNS_ARG=()
if [ -n "${FUZZ_RUNS:-}" ]; then
  RUNS_ARG=(-runs="$FUZZ_RUNS")
fi
# AddressSanitizer by default; FUZZ_SANITIZER=none builds without (faster, safe-Rust only).
SAN="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz-ci: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build -s "$SAN"

failed=()
summary=()
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/corpus/$t"
  log="target/fuzz-$t.log"
  echo "=== fuzz $t for ${SECS}s"
  set +e
  cargo fuzz run -s "$SAN" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$SECS" "${RUNS_ARG[@]}" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  # the dispatch target provisions a directory per process in the temp dir
  rm -rf "${TMPDIR:-/tmp}"/dird-fuzz-dispatch-* 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo "FAIL: $t (exit $rc); last lines of $log:"
    tail -40 "$log"
  fi
  summary+=("$(printf '%-14s %12s executions  coverage %6s  %s' "$t" "${execs:-?}" "${cov:-?}" "$([ "$rc" -eq 0 ] && echo ok || echo CRASH)")")
done

echo "=== fuzz summary (${SECS}s per target, sanitizer $SAN)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-ci: crashes in: ${failed[*]} (reproducers in fuzz/artifacts/)"
  exit 1
fi
echo "${#targets[@]} passed, 0 failed"
