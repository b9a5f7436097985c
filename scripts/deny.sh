#!/usr/bin/env bash
# Supply-chain check (issue 15 item 6): cargo-deny over Cargo.lock with the policy in deny.toml.
# licenses (permissive only: no GPL/AGPL/LGPL-only code in the daemon), bans (duplicate major
# versions are reported as warnings; banned crates fail), sources (crates.io only) always run;
# advisories (RustSec) run only when the advisory database can be fetched, and the script says
# which. Installs cargo-deny from crates.io if it is missing. Exit status non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "deny.sh: installing cargo-deny"
  cargo install cargo-deny --locked --version 0.20.2
fi

cargo deny --version
# --offline: these three checks need nothing from the network (the crates are in the cargo cache).
cargo deny --offline check licenses bans sources

if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "deny.sh: advisories NOT checked: the RustSec advisory database is unreachable from here"
fi
