#!/usr/bin/env bash
# Installs the Kubernetes manifest schema checker used by tests/deploy/test_k8s_manifests.py.
#
# kubeconform itself is not installable here: it is distributed as GitHub release binaries, and
# none of the registries this project may use has it (PyPI: no such project; npm: 404; Debian: no
# package). kubernetes-validate (PyPI) does the same job: it validates each manifest against the
# OpenAPI-derived JSON schemas of a chosen Kubernetes version, which ship inside the wheel (no
# download at validation time), and --strict rejects unknown fields as kubeconform -strict does.
#
# It goes into its own virtual environment under tools/ (git-ignored) so it never changes the
# project's pinned environment. Idempotent: returns at once when the pinned version is installed.
# Usage: bash scripts/setup-kubeconform.sh   -> tools/k8s-venv/bin/kubernetes-validate
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${K8S_VALIDATE_VENV:-tools/k8s-venv}"
PYTHON="${PYTHON:-python3.11}"
PIN="kubernetes-validate==1.37.0"
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PIN" ] && [ -x "$VENV/bin/kubernetes-validate" ]; then
  exit 0
fi
command -v "$PYTHON" >/dev/null 2>&1 || { echo "setup-kubeconform: $PYTHON not found (set PYTHON=...)" >&2; exit 1; }
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN"
"$VENV/bin/kubernetes-validate" --version >/dev/null
echo "$PIN" >"$STAMP"
echo "setup-kubeconform: $VENV/bin/kubernetes-validate ready"
