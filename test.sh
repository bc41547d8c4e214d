#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it builds and drives (deps.sh,
# and pyngrok in a virtualenv), then runs cargo test over the workspace (whose relay
# builds with its fleet feature, so the store's tests run on redb and on etcd).
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")"

./deps.sh

venv=target/pyngrok-venv
if ! "$venv/bin/python" -c 'import pyngrok' >/dev/null 2>&1; then
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'pyngrok>=7.5,<7.6'
fi
export BURROW_PYNGROK_PYTHON="$PWD/$venv/bin/python"

# The binaries the tests run, with the features the tests resolve (src/binaries.rs).
cargo build --workspace --bins --tests
cargo test --workspace "$@"
