# Shared by scripts/run and scripts/test: find Python 3.11+, make the virtualenv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CONVEYOR_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "Conveyor needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
}

ensure_venv() {  # ensure_venv EXTRAS
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating a virtualenv in $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  local stamp="$VENV/.conveyor-installed-$1"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "Installing Conveyor[$1] and its pinned dependencies"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$1]"
    touch "$stamp"
  fi
}
