#!/usr/bin/env bash
# Build django-switchyard's wheel and sdist, then do what a Django team does with them
# (tests/packaging/check_package.py): install into a fresh venv, start a project as the
# README says, migrate, call LLMService and /v1, check the usage rows.
#
# Usage: scripts/check-package.sh [--database sqlite] [--database postgres://...]
# (default: SQLite only). Needs the dev venv (`make venv-dev`: the `build` front end).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

dist=$(mktemp -d /tmp/switchyard-dist.XXXXXX)
trap 'rm -rf "$dist"' EXIT
echo "==> building the wheel and sdist"
# No build isolation needed beyond what `build` does; its log only on failure.
if ! "$PY" -m build --outdir "$dist" . >"$dist/build.log" 2>&1; then
  cat "$dist/build.log" >&2
  exit 1
fi
rm -rf build ./*.egg-info
"$PY" tests/packaging/check_package.py --dist "$dist" "$@"
