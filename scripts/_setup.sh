# Shared by scripts/run and scripts/test: a project venv with the given extras installed.
# Usage: . scripts/_setup.sh EXTRAS
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "reconciler needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=".venv/.installed-$1-$(cat pyproject.toml | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -e ".[$1]"
  touch "$stamp"
fi
