#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md: builds strata and the harness (release), installs
# the pinned DuckDB into a virtual environment under target/, generates the data and
# writes target/bench/results.{json,md}. Not part of the test suite.
#
#   scripts/bench.sh                      # sizes 1, 5 and 20 million envelopes
#   scripts/bench.sh --sizes 0.1 --nrt-millions-per-day 0.1 --repeat 1   # a quick pass
#
# BENCH_DATA (default target/bench-data) holds the generated lakes (at 20 M about 1 GB for
# the demo shape, 4 GB for the high-entropy one); generated data is reused by later runs.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$PWD/target/bench-venv"
pins="duckdb==2.0.1"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$pins" ]; then
  echo "installing $pins into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$venv/.installed"
fi

CARGO_TARGET_DIR="$target" cargo build --release --locked --manifest-path bench/Cargo.toml

data="${BENCH_DATA:-$PWD/target/bench-data}"
out="${BENCH_OUT:-$PWD/target/bench}"
mkdir -p "$data" "$out"
exec "$venv/bin/python" bench/run.py --data "$data" --out "$out" --bin-dir "$target/release" \
  --python "$venv/bin/python" "$@"
