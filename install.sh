#!/bin/sh
# Make a venv and install tfwizard (editable) with the pinned set for its Python version.
#   ./install.sh [EXTRAS]      EXTRAS default: all,test (e.g. ./install.sh onnx)
#   PYTHON=python3.12 VENV=/tmp/v312 ./install.sh    another Python or venv directory
set -eu
cd "$(dirname "$0")"
python=${PYTHON:-python3}
venv=${VENV:-.venv}
extras=${1:-all,test}
ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case $ver in
  3.11|3.12) pins=constraints.txt ;;
  3.13) pins=constraints-py313.txt ;;
  *) echo "install.sh: Python $ver is not supported: use 3.11, 3.12 or 3.13 (PYTHON=python3.12 ./install.sh)" >&2
     exit 2 ;;
esac
"$python" -m venv "$venv"
"$venv/bin/pip" install -q uv==0.13.9
"$venv/bin/uv" pip install -q --python "$venv/bin/python" --compile-bytecode -c "$pins" -e ".[$extras]"
