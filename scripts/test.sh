#!/usr/bin/env bash
# Runs every check and test strata has, from a fresh clone. Installs what the tests need
# (the pinned Python tools of requirements-test.txt, in a virtual environment under
# target/) by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="$PWD/target/venv"
if ! cmp -s requirements-test.txt "$venv/.installed" 2>/dev/null; then
  echo "installing test tools into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements-test.txt
  cp requirements-test.txt "$venv/.installed"
fi
export STRATA_TEST_PYTHON="$venv/bin/python"

# The docs site is checked in a real headless browser: Debian's chromium and its driver.
if ! [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo "installing chromium and chromium-driver (Debian packages)"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

# CloudFormation templates: cfn-lint, and the command lines they run, for tests/it/infra.rs.
export STRATA_INFRA_COMMANDS="$PWD/target/infra-commands.json"
infra/lint.sh "$venv/bin/python"

cargo fmt --all --check
# The workspace: strata and its core (crates/core).
cargo clippy --workspace --all-targets --locked -- -D warnings
# The benchmark harness (its own package, not run here) implements the engine contract:
# checked, so a change to the contract cannot leave it broken until the next benchmark.
cargo clippy --locked --manifest-path bench/Cargo.toml -- -D warnings
cargo test --locked
# The shipped models' unit tests (sql/<layer>/<name>.tests.toml), on the embedded engine,
# with the binary the test build made: `cargo run` would build every dependency again,
# without the features the dev-dependencies turn on (about 12 minutes on a cold machine).
"${CARGO_TARGET_DIR:-target}/debug/strata" test
