#!/usr/bin/env bash
# Make .venv hold exactly the pinned requirements: `runtime` (requirements.txt) or `dev`
# (requirements-dev.txt, which includes the runtime set).
#
# A stamp file records the hash of each requirements file installed. When a file the venv
# was built from has changed, the venv is re-created from scratch, so that a removed or
# downgraded pin does not linger; when only the dev set is missing, it is added on top.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-runtime}
case $mode in runtime|dev) ;; *) echo "usage: $0 runtime|dev" >&2; exit 2 ;; esac

venv=.venv
stamp=$venv/.switchyard-requirements
pip_flags=(--disable-pip-version-check --no-input --quiet)

hash_of() { cksum <"$1" | cut -d' ' -f1,2; }
stamped() { [ -f "$stamp" ] && grep -qxF "$1 $(hash_of "$2")" "$stamp"; }
recorded() { [ -f "$stamp" ] && grep -q "^$1 " "$stamp"; }

venv_works() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null
}

fresh=false
if ! venv_works || ! stamped runtime requirements.txt ||
   { recorded dev && ! stamped dev requirements-dev.txt; }; then
  fresh=true
fi

if $fresh; then
  python=$(scripts/find-python.sh)
  echo "Creating $venv with $python ($("$python" --version 2>&1))"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

if $fresh || { [ "$mode" = dev ] && ! stamped dev requirements-dev.txt; }; then
  req=requirements.txt
  [ "$mode" = dev ] && req=requirements-dev.txt
  echo "Installing $req into $venv"
  "$venv/bin/python" -m pip install "${pip_flags[@]}" -r "$req"
  # Written only after a complete install, so an interrupted one is redone next time.
  {
    echo "runtime $(hash_of requirements.txt)"
    [ "$mode" = dev ] && echo "dev $(hash_of requirements-dev.txt)"
    true
  } >"$stamp"
fi
