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
# The package's bytecode, written now: an environment with PYTHONDONTWRITEBYTECODE set would otherwise compile every
# module again in each process (0.1 s of a command's start; the suite runs several hundred). Stale files are
# recompiled by their timestamps, here and at import.
.venv/bin/python -m compileall -q reconciler >/dev/null
