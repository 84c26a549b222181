#!/usr/bin/env bash
# Print the path of a Python >= 3.12 (with venv support) found on this machine.
#
# Search order: $PYTHON; python3.14 … python on PATH; pyenv; asdf; mise; uv-managed
# Pythons; conda; common install prefixes. Each candidate is run, not trusted by name:
# pyenv shims exist on PATH for every installed version but fail with "command not found"
# when that version is not selected, and `python3` is often older than 3.12.
set -u

MIN_MAJOR=3
MIN_MINOR=12
tried=()

# Run a candidate and print "MAJOR.MINOR<TAB>HAS_VENV<TAB>BASE_EXECUTABLE".
# _base_executable is the interpreter a venv was made from, so an activated venv (even
# .venv itself) never becomes the base of a new one.
probe() {
  "$1" -c 'import sys, importlib.util as u
ok = int(bool(u.find_spec("venv") and u.find_spec("ensurepip")))
exe = getattr(sys, "_base_executable", "") or sys.executable
print(f"{sys.version_info[0]}.{sys.version_info[1]}\t{ok}\t{exe}")' 2>/dev/null </dev/null
}

# Print the candidate's usable path and succeed, or record why it was skipped.
check() {
  local cand=$1 out ver has_venv exe major minor
  [ -n "$cand" ] || return 1
  out=$(probe "$cand") || { tried+=("$cand: does not run"); return 1; }
  IFS=$'\t' read -r ver has_venv exe <<<"$out"
  major=${ver%%.*}
  minor=${ver#*.}
  if ! [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]]; then
    tried+=("$cand: unexpected answer"); return 1
  fi
  if (( major < MIN_MAJOR || (major == MIN_MAJOR && minor < MIN_MINOR) )); then
    tried+=("$cand: Python $ver is too old"); return 1
  fi
  if [ "$has_venv" != 1 ]; then
    tried+=("$cand: Python $ver lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python$ver-venv)")
    return 1
  fi
  [ -x "$exe" ] || exe=$cand
  printf '%s\n' "$exe"
}

# Try each existing path given, highest version first (sort -V on the whole path).
check_globbed() {
  local path
  while IFS= read -r path; do
    [ -n "$path" ] && [ -x "$path" ] && check "$path" && return 0
  done < <(printf '%s\n' "$@" | sort -rV -u)
  return 1
}

if [ -n "${PYTHON:-}" ]; then
  # An explicit choice is honoured or refused, never silently replaced.
  check "$PYTHON" && exit 0
  echo "find-python: PYTHON=$PYTHON is not usable: ${tried[*]}" >&2
  exit 1
fi

for name in python3.14 python3.13 python3.12 python3 python; do
  path=$(command -v "$name" 2>/dev/null) || continue
  check "$path" && exit 0
done

shopt -s nullglob

pyenv_root=""
if command -v pyenv >/dev/null 2>&1; then
  pyenv_root=$(pyenv root 2>/dev/null || true)
fi
for root in "$pyenv_root" "${PYENV_ROOT:-}" "$HOME/.pyenv"; do
  [ -n "$root" ] && [ -d "$root/versions" ] || continue
  check_globbed "$root"/versions/*/bin/python3 && exit 0
done

for dir in "${ASDF_DATA_DIR:-$HOME/.asdf}/installs/python" \
           "${XDG_DATA_HOME:-$HOME/.local/share}/mise/installs/python"; do
  check_globbed "$dir"/*/bin/python3 && exit 0
done

uv_dir=${UV_PYTHON_INSTALL_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/uv/python}
check_globbed "$uv_dir"/*/bin/python3 && exit 0

check_globbed "$HOME"/miniforge3/bin/python3 "$HOME"/miniconda3/bin/python3 \
  "$HOME"/anaconda3/bin/python3 /opt/conda/bin/python3 && exit 0

# FIND_PYTHON_SKIP_SYSTEM=1 leaves these out (the tests use it to stay machine-independent).
if [ -z "${FIND_PYTHON_SKIP_SYSTEM:-}" ]; then
  check_globbed /usr/local/bin/python3.1[2-9] /usr/local/bin/python3 \
    /opt/python*/bin/python3 /opt/homebrew/bin/python3.1[2-9] \
    /Library/Frameworks/Python.framework/Versions/3.1[2-9]/bin/python3 \
    /usr/bin/python3.1[2-9] && exit 0
fi

{
  echo "find-python: no Python >= $MIN_MAJOR.$MIN_MINOR with venv support was found."
  if [ ${#tried[@]} -gt 0 ]; then
    echo "Tried:"
    printf '  %s\n' "${tried[@]}"
  fi
  printf '%s\n' \
    "Install one, then run the command again, for example:" \
    "  Debian/Ubuntu:  apt-get install python3.12 python3.12-venv   (or python3.13)" \
    "  macOS:          brew install python@3.13" \
    "  pyenv:          pyenv install 3.13" \
    "  uv:             uv python install 3.13" \
    "Or point at one explicitly:  PYTHON=/path/to/python3.12 make run"
} >&2
exit 1
