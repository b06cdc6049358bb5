#!/usr/bin/env bash
# Creates .triton-venv/: a virtual environment holding NVIDIA's Triton Inference Server as it ships
# inside the nvidia-pytriton wheel (a real `tritonserver` binary with the Python backend), for the
# tests marked `triton` and for CPU benchmarks. On GPU machines production runs NVIDIA's Triton
# container instead (deploy/k8s/); this environment is for loopback tests only.
#
# Why a separate environment: nvidia-pytriton 0.7.0 requires numpy<2, the project pins numpy 2.
# The server is a separate process anyway; the project talks to it with tritonclient.
#
# Idempotent: a stamp file records the pins; re-running with the same pins returns at once.
# Usage: bash scripts/setup-triton.sh [VENV_DIR]   (default .triton-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-.triton-venv}"
PYTHON="${PYTHON:-python3.11}"
# numpy: the last 1.x release. onnxruntime: the project's pin, for the served model.py files
# (deploy/triton_python_model.py), so Triton and local results come from the same runtime.
# pytriton's own requirements pull the rest (tritonclient, pyzmq, grpcio, ...).
PINS=("nvidia-pytriton==0.7.0" "numpy==1.26.4" "onnxruntime==1.31.1")
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PINS[*]}" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || { echo "setup-triton: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"

# Fail here, not in a test, if the wheel did not bring the server binary.
server="$("$VENV/bin/python" - <<'EOF'
import pathlib, pytriton
root = pathlib.Path(pytriton.__file__).parent / "tritonserver"
binary = root / "bin" / "tritonserver"
print(binary if binary.is_file() else "")
EOF
)"
if [ -z "$server" ]; then
  echo "setup-triton: nvidia-pytriton installed, but its tritonserver binary is missing" >&2
  exit 1
fi
echo "${PINS[*]}" >"$STAMP"
echo "setup-triton: tritonserver at $server"
