#!/usr/bin/env bash
# Install everything, then lint, type-check and run every test tier (unit, integration, lab)
# in one pytest run. The README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh   # every package, daemon and Python dependency the tiers need
V=.venv/bin

echo "== ruff"; "$V/ruff" check . && "$V/ruff" format --check . >/dev/null
echo "== mypy --strict"; "$V/python" scripts/typecheck.py   # the wheel's tree, by git path

echo "== pytest (unit, integration, lab)"
set +e
"$V/pytest" -m "unit or integration or lab" "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  # Exit 5 means nothing was collected. That is only fine for a tier that has no test files.
  if find tests -name 'test_*.py' | grep -q .; then
    echo "pytest collected no tests although test files exist: failing" >&2
    exit 1
  fi
  echo "no tests exist yet: nothing to run"
  exit 0
fi
exit $rc
