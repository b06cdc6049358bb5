#!/usr/bin/env bash
# GPU runbook: build the TensorRT engines, serve the models with Triton, measure, write the results.
#
#   bash benchmarks/gpu.sh --dry-run          # print every command, run nothing (no GPU needed)
#   bash benchmarks/gpu.sh                    # on the GPU machine (not timed yet: an hour or so)
#
# Every step is an ordinary project command; this script strings them together, and keeps going
# when one measurement fails so that one bad cell does not waste the GPU time of the others.
#
#   1. check   nvidia-smi must see a GPU (exit 2 otherwise).
#   2. setup   the project venv (`make .venv/.installed`: `make setup` without the Debian fonts,
#              which are tried on their own), TensorRT (`pip install -c constraints.txt -e
#              '.[gpu]'`), the bundled tritonserver (scripts/setup-triton.sh) and perf_analyzer
#              (the perf-analyzer wheel, into var/gpu-bench/tools).
#   3. record  nvidia-smi -q, the git commit and dirty state, pip freeze.
#   4. build   per model card and precision (fp16, int8): generated held-out data for the accuracy
#              gate, then `customs-vision build-engine` (INT8 calibration: its default, 256
#              generated images). An engine the gate refuses is not written; the refusal is a
#              result, listed in failures.txt.
#   5. direct  `python -m benchmarks.throughput` with Triton not running: tensorrt-fp16,
#              tensorrt-int8, onnxruntime-fp32 (the CPU build the project pins: no CUDA provider),
#              torch and the ultralytics peers on CUDA.
#   6. triton  render a Triton repository (`customs-vision triton-repo`), start tritonserver on
#              loopback, wait until every model is ready, run perf_analyzer per model and batch
#              size over a concurrency range and `benchmarks.throughput --backends triton`, then
#              stop the server (it is stopped on any exit too).
#
# What Triton serves depends on the server you have:
#   * default: the tritonserver bundled in the nvidia-pytriton wheel (.triton-venv). It has only
#     Triton's Python backend, so it serves the `python-onnxruntime` variant (ONNX Runtime on the
#     CPU inside Triton): results labelled `triton-python-onnxruntime` measure the Triton hop and
#     its batching on this machine, not the GPU.
#   * --triton-home DIR: a Triton installation with the TensorRT backend (DIR/bin/tritonserver and
#     DIR/backends/tensorrt; /opt/tritonserver in NVIDIA's container). The engines of step 4 are
#     served as `tensorrt_plan` models on KIND_GPU instances, once per precision (labels
#     `triton-tensorrt-fp16`, `triton-tensorrt-int8`). Its TensorRT backend must be built against
#     the TensorRT version that built the engines (tensorrt in .venv), or the plans do not load.
#
# Needs: an NVIDIA GPU and driver, python3.11, make, glibc >= 2.38 for perf_analyzer (its wheel is
# manylinux_2_38: Ubuntu 24.04 or newer), and pip access to PyPI *and* pypi.nvidia.com:
# tensorrt_cu13_libs on PyPI is a stub that downloads the real wheel from NVIDIA's index.
#
# Writes to --out (default benchmarks/results/gpu-<UTC date>/): build-<model>-<precision>.json
# (gate and engine report), throughput-<model>-gpu.{json,csv,png} (step 5),
# throughput-<model>-<label>.{json,csv,png} and perf_analyzer-<label>-<model>-b<batch>.csv (step 6),
# tritonserver-<label>.log, nvidia-smi.txt, git.txt, git-status.txt, pip-freeze.txt,
# commands.txt (every command run), runbook.log (everything printed) and failures.txt (only when
# something failed). Work files (held-out data, engines, repositories, tools): var/gpu-bench/.
#
# Exit status: 0 all done; 1 a step failed (a setup step stops the run, any later failure is listed
# in failures.txt and the other steps still run); 2 cannot run here (no GPU, bad option).
set -euo pipefail

# ------------------------------------------------------------------------------------ settings

PYTHON="${PYTHON:-python3.11}"
PERF_BATCHES="${PERF_BATCHES:-1 2 4 8 16 32}"
PERF_CONCURRENCY="${PERF_CONCURRENCY:-1:8:1}"
PERF_REQUESTS="${PERF_REQUESTS:-30}"
THROUGHPUT_BATCHES="${THROUGHPUT_BATCHES:-1,2,4,8,16,32}"
DIRECT_BACKENDS="${DIRECT_BACKENDS:-tensorrt-fp16,tensorrt-int8,onnxruntime-fp32,torch,ultralytics-onnx,ultralytics-torch}"
HELDOUT_COUNT="${HELDOUT_COUNT:-200}"
TRITON_INSTANCES="${TRITON_INSTANCES:-1}"
TRITON_HTTP_PORT="${TRITON_HTTP_PORT:-8000}"
TRITON_GRPC_PORT="${TRITON_GRPC_PORT:-8001}"
TRITON_START_TIMEOUT_S="${TRITON_START_TIMEOUT_S:-300}"
TRITON_HOME="${TRITON_HOME:-}"
# perf_analyzer is no longer in tritonclient's wheel but a package of its own. Its console script
# always exits 0, so the binary inside the package is called directly.
PERF_ANALYZER_PIN="perf-analyzer==2.60.0"
# Held-out data for the accuracy gate: a seed no training, calibration or benchmark set uses
# (training sets use small seeds, deploy.samples 7_300_00x, benchmarks/throughput.py 7_400_001).
HELDOUT_SEED=7500001

MODELS_DIR=models
VENV=.venv
PY="$VENV/bin/python"
CLI="$VENV/bin/customs-vision"
WORK=var/gpu-bench
PERF_ANALYZER="$WORK/tools/perf_analyzer/bin/perf_analyzer"
CORES="$(nproc 2>/dev/null || echo 4)"
SELECTED=""
OUT=""
DRY_RUN=0
SKIP_BUILD=0
PERF_OK=1
TRITON_PID=""
HELDOUT=""
FAILURES=()
ALL_NAMES=()
NAMES=()
declare -A TASK=() MAX_BATCH=() CARD=()

usage() {
  cat <<'EOF'
usage: bash benchmarks/gpu.sh [--models NAME,...] [--out DIR] [--skip-build] [--triton-home DIR] [--dry-run]

  --models NAME,...   model cards to measure, by name (default: every card in models/)
  --out DIR           result folder (default: benchmarks/results/gpu-<UTC date>)
  --skip-build        reuse the engines in var/gpu-bench/engines from an earlier run
  --triton-home DIR   serve the TensorRT engines with this Triton installation instead of the
                      bundled server (see the comment at the top of this file)
  --dry-run           print every command instead of running it; needs no GPU

Tuning (environment): PYTHON (python3.11), PERF_BATCHES ("1 2 4 8 16 32"), PERF_CONCURRENCY
(1:8:1), PERF_REQUESTS (30), THROUGHPUT_BATCHES (1,2,4,8,16,32), DIRECT_BACKENDS,
HELDOUT_COUNT (200), TRITON_INSTANCES (1), TRITON_HTTP_PORT (8000), TRITON_GRPC_PORT (8001),
TRITON_START_TIMEOUT_S (300), TRITON_HOME (as --triton-home).
EOF
}

# ------------------------------------------------------------------------------------- helpers

quote() {  # the arguments as one line a shell reads back the same (plain words stay unquoted)
  local a line="" q="'"
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      line+="$a "
    else
      line+="$q${a//$q/$q\\$q$q}$q "
    fi
  done
  printf '%s' "${line% }"
}

log_command() {  # append a command line to commands.txt (real runs only)
  [ "$DRY_RUN" = 1 ] || echo "$*" >>"$OUT/commands.txt"
}

run() {  # print a command, then run it (with --dry-run: only print it)
  echo "+ $(quote "$@")"
  [ "$DRY_RUN" = 1 ] && return 0
  log_command "$(quote "$@")"
  "$@"
}

run_to() {  # run_to FILE CMD...: like run, with the command's standard output written to FILE
  local file=$1
  shift
  echo "+ $(quote "$@") >$(quote "$file")"
  [ "$DRY_RUN" = 1 ] && return 0
  log_command "$(quote "$@") >$(quote "$file")"
  "$@" >"$file"
}

fail() {  # record a failed step and carry on with the next one
  echo "gpu.sh: FAILED: $*" >&2
  FAILURES+=("$*")
}

attempt() {  # attempt WHAT CMD...: run CMD; a failure is recorded, not fatal
  local what=$1
  shift
  run "$@" || fail "$what (exit $?)"
}

attempt_to() {  # attempt_to WHAT FILE CMD...: attempt, standard output to FILE (removed if it failed empty)
  local what=$1 file=$2
  shift 2
  run_to "$file" "$@" && return 0
  fail "$what (exit $?)"
  [ "$DRY_RUN" = 1 ] || [ -s "$file" ] || rm -f "$file"
}

section() {
  echo
  echo "=== $* ==="
}

# ------------------------------------------------------------------------------ the model cards

read_cards() {  # fill ALL_NAMES, TASK, MAX_BATCH, CARD from the cards in models/ (as deploy.triton_repo reads them)
  local name task max_batch card
  while read -r name task max_batch card; do
    ALL_NAMES+=("$name")
    TASK[$name]=$task
    MAX_BATCH[$name]=$max_batch
    CARD[$name]=$card
  done < <("$PYTHON" - "$MODELS_DIR" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        continue
    if not isinstance(card, dict) or (card.get("training") or {}).get("precision") == "int8":
        continue  # INT8 cards of `customs-vision quantize` share their parent's name; engines come from the parent
    if {"name", "spec", "task", "sha256"} <= card.keys():
        print(card["name"], card["task"], card["spec"].get("max_batch", 1), path)
EOF
  )
}

select_models() {  # NAMES: the --models list, each checked against the cards, or every card
  local name
  if [ -z "$SELECTED" ]; then
    NAMES=("${ALL_NAMES[@]}")
    return 0
  fi
  IFS=, read -r -a NAMES <<<"$SELECTED"
  for name in "${NAMES[@]}"; do
    if [ -z "${CARD[$name]:-}" ]; then
      echo "gpu.sh: no model card named '$name' in $MODELS_DIR/ (there are: ${ALL_NAMES[*]})" >&2
      return 1
    fi
  done
}

# ------------------------------------------------------------------------------ server control

alive() {  # whether the process runs (a zombie does not count)
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ $state != Z* ]]
}

ready() {  # GET /v2/health/ready answers 200: the server is up and every model is loaded
  "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$TRITON_HTTP_PORT/v2/health/ready" 2>/dev/null
}

start_triton() {  # start_triton REPOSITORY LOG: start the server in its own process group, wait until ready
  local repo=$1 log=$2
  local listen=(--http-address=127.0.0.1 "--http-port=$TRITON_HTTP_PORT"
    --grpc-address=127.0.0.1 "--grpc-port=$TRITON_GRPC_PORT" --allow-metrics=false)
  if [ -n "$TRITON_HOME" ]; then
    local command=("$TRITON_HOME/bin/tritonserver" "--model-repository=$repo"
      "--backend-directory=$TRITON_HOME/backends" "${listen[@]}")
    echo "+ $(quote "${command[@]}") >$(quote "$log") 2>&1 &"
    [ "$DRY_RUN" = 1 ] && return 0
    log_command "$(quote "${command[@]}") &"
    LD_LIBRARY_PATH="$TRITON_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" setsid "${command[@]}" >"$log" 2>&1 &
  else
    # The bundled server needs its backend folder assembled and its environment set (see
    # deploy/triton_server.py): TritonServer does both, then Python hands its process over to the
    # server (execve keeps the process id, so the server is the process this script stops).
    echo "+ tritonserver --model-repository=$(quote "$repo") ${listen[*]} >$(quote "$log") 2>&1 &" \
      "  # the bundled server (.triton-venv), started through deploy.triton_server.TritonServer"
    [ "$DRY_RUN" = 1 ] && return 0
    log_command "tritonserver (bundled) --model-repository=$(quote "$repo") ${listen[*]} &"
    mkdir -p "$WORK/tmp"
    TMPDIR="$WORK/tmp" setsid "$PY" - "$repo" "$TRITON_HTTP_PORT" "$TRITON_GRPC_PORT" >"$log" 2>&1 <<'EOF' &
import os
import sys

from deploy.triton_server import TritonServer

server = TritonServer(model_repository=sys.argv[1], http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]))
command = server.command()
os.execve(command[0], command, server.installation.environment())
EOF
  fi
  TRITON_PID=$!
  local deadline=$((SECONDS + TRITON_START_TIMEOUT_S))
  while [ $SECONDS -lt $deadline ]; do
    if ! alive "$TRITON_PID"; then
      tail -n 30 "$log" >&2
      wait "$TRITON_PID" 2>/dev/null || true
      TRITON_PID=""
      return 1
    fi
    ready && return 0
    sleep 1
  done
  tail -n 30 "$log" >&2
  stop_triton
  return 1
}

stop_triton() {  # SIGTERM to the server's process group (it holds the Python-backend stubs), then SIGKILL
  [ -n "$TRITON_PID" ] || return 0
  kill -TERM -- "-$TRITON_PID" 2>/dev/null || true
  local _
  for _ in $(seq 1 150); do
    alive "$TRITON_PID" || break
    sleep 0.1
  done
  kill -KILL -- "-$TRITON_PID" 2>/dev/null || true
  wait "$TRITON_PID" 2>/dev/null || true
  TRITON_PID=""
  rm -rf "$WORK/tmp"/cv-triton-*  # the bundled server's backend folder (TritonServer's work folder)
}

# ------------------------------------------------------------------------------------- 1. check

stage_check() {
  section "1. check: GPU, tools"
  if [ "$DRY_RUN" = 1 ]; then
    echo "(dry run: nothing is run; the GPU check is skipped)"
  else
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
      echo "gpu.sh: no NVIDIA GPU here: nvidia-smi is missing or cannot reach the driver." >&2
      echo "gpu.sh: this runbook builds TensorRT engines and must run on the GPU machine;" >&2
      echo "gpu.sh: 'bash benchmarks/gpu.sh --dry-run' prints its commands anywhere." >&2
      return 2
    fi
    nvidia-smi -L
    if ! command -v make >/dev/null 2>&1; then
      echo "gpu.sh: make not found (apt-get install make)" >&2
      return 2
    fi
    if [ -n "$TRITON_HOME" ] && { [ ! -x "$TRITON_HOME/bin/tritonserver" ] || [ ! -d "$TRITON_HOME/backends/tensorrt" ]; }; then
      echo "gpu.sh: --triton-home $TRITON_HOME has no bin/tritonserver or no backends/tensorrt" >&2
      return 2
    fi
    # perf_analyzer's wheel is built for glibc 2.38; on an older system it cannot start.
    local glibc
    glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
    if [ "$(printf '%s\n' 2.38 "${glibc:-0}" | sort -V | head -n1)" != 2.38 ]; then
      fail "perf_analyzer needs glibc >= 2.38, this system has ${glibc:-an unknown one}: perf_analyzer is skipped"
      PERF_OK=0
    fi
  fi
  echo "models: ${NAMES[*]}; results: $OUT; work files: $WORK"
}

# ------------------------------------------------------------------------------------- 2. setup

stage_setup() {
  section "2. setup: venv, TensorRT, tritonserver, perf_analyzer"
  run make "$VENV/.installed" "PYTHON=$PYTHON"
  # Fonts for the synthetic documents (the document model's held-out set only); may need apt.
  attempt "Debian fonts (scripts/system-deps.sh)" bash scripts/system-deps.sh
  # tensorrt==11.4.0.106 is pinned in pyproject's [gpu] extra and pins tensorrt_cu13==11.4.0.106
  # (CUDA 13, like the torch wheels), which pins its _libs and _bindings exactly. They are not in
  # constraints.txt because that file is frozen on a CPU machine, where [gpu] is never installed.
  run "$PY" -m pip install --quiet -c constraints.txt -e '.[gpu]' || {
    echo "gpu.sh: installing TensorRT failed. tensorrt_cu13_libs on PyPI is a stub that downloads" \
      "the real wheel from pypi.nvidia.com: that index must be reachable too." >&2
    return 1
  }
  run "$PY" -c 'import tensorrt, torch; assert torch.cuda.is_available(), "torch sees no CUDA GPU"; print("TensorRT", tensorrt.__version__, "on", torch.cuda.get_device_name(0))'
  [ -n "$TRITON_HOME" ] || run bash scripts/setup-triton.sh
  if [ "$PERF_OK" = 1 ]; then
    run "$PY" -m pip install --quiet --no-deps --upgrade --target "$WORK/tools" "$PERF_ANALYZER_PIN"
    run chmod +x "$PERF_ANALYZER"
  fi
}

# ------------------------------------------------------------------------------------ 3. record

stage_record() {
  section "3. record: GPU, commit, packages"
  attempt_to "nvidia-smi -q" "$OUT/nvidia-smi.txt" nvidia-smi -q
  # A copy of the tree without .git cannot say its commit: recorded as a failure, not fatal.
  attempt_to "git commit" "$OUT/git.txt" git log -1 '--format=commit %H%ndate %cI%nsubject %s'
  attempt_to "git status" "$OUT/git-status.txt" git status --short --untracked-files=no
  attempt_to "pip freeze" "$OUT/pip-freeze.txt" "$PY" -m pip freeze
}

# ------------------------------------------------------------------------------------- 4. build

heldout_for() {  # heldout_for NAME: generate the model's held-out set (once) into $WORK; sets HELDOUT
  local name=$1 generate
  HELDOUT="$WORK/heldout/$name"
  [ "$DRY_RUN" = 0 ] && [ -f "$HELDOUT/.complete" ] && return 0
  case "$name" in
    xray)
      generate=(synth xray --out "$HELDOUT" --count "$HELDOUT_COUNT" --val-fraction 1.0) ;;
    document)
      generate=(synth documents --out "$HELDOUT" --count "$HELDOUT_COUNT" --val-fraction 1.0) ;;
    similarity)
      # Stamp owners from 100000 on: never trained on (SIM-AUTH-00000..00299 and the real data).
      generate=(synth specimens --out "$HELDOUT" --kind stamp --owners 60 --per-owner 5 --forgeries 5
        --first-owner 100000) ;;
    *)
      echo "gpu.sh: no held-out generator for model '$name'" >&2
      return 1 ;;
  esac
  run "$CLI" "${generate[@]}" --seed "$HELDOUT_SEED" --workers "$CORES" --overwrite || return 1
  [ "$DRY_RUN" = 1 ] || touch "$HELDOUT/.complete"
}

engine_path() { echo "$WORK/engines/$1-$2/model.plan"; }

stage_build() {
  section "4. build: TensorRT engines behind the accuracy gate"
  if [ "$SKIP_BUILD" = 1 ]; then
    echo "--skip-build: using the engines in $WORK/engines"
    return 0
  fi
  local name precision plan kind
  for name in "${NAMES[@]}"; do
    if ! heldout_for "$name"; then
      fail "held-out data for $name"
      continue
    fi
    kind=()
    [ "${TASK[$name]}" = embed ] && kind=(--kind stamp)
    for precision in fp16 int8; do
      plan="$(engine_path "$name" "$precision")"
      [ "$DRY_RUN" = 1 ] || rm -f "$plan"
      attempt_to "build-engine $name $precision" "$OUT/build-$name-$precision.json" \
        "$CLI" build-engine "$name" --precision "$precision" --models "$MODELS_DIR" \
        --heldout "$HELDOUT" "${kind[@]}" --out "$plan"
    done
  done
}

# ------------------------------------------------------------------------------------ 5. direct

stage_direct() {
  section "5. direct: benchmarks.throughput on this GPU"
  local name weights
  for name in "${NAMES[@]}"; do
    weights=()
    [ -f "$MODELS_DIR/$name.pt" ] && weights=(--torch-weights "$MODELS_DIR/$name.pt")
    attempt "throughput $name (direct)" "$PY" -m benchmarks.throughput --card "${CARD[$name]}" \
      --backends "$DIRECT_BACKENDS" --device cuda "${weights[@]}" --batches "$THROUGHPUT_BATCHES" \
      --out-dir "$OUT" --name "throughput-$name-gpu"
  done
}

# ------------------------------------------------------------------------------------ 6. triton

render_repo() {  # render_repo VARIANT REPOSITORY: every card rendered, then the unselected removed
  local variant=$1 repo=$2 name
  run rm -rf "$repo" || return 1
  run "$CLI" triton-repo --models "$MODELS_DIR" --out "$repo" --variant "$variant" \
    --instances "$TRITON_INSTANCES" || return 1
  for name in "${ALL_NAMES[@]}"; do
    [[ " ${NAMES[*]} " == *" $name "* ]] || run rm -rf "${repo:?}/$name" || return 1
  done
}

measure_triton() {  # measure_triton LABEL REPOSITORY MODEL...: serve, perf_analyzer, throughput, stop
  local label=$1 repo=$2 name batch
  shift 2
  if ! start_triton "$repo" "$OUT/tritonserver-$label.log"; then
    fail "tritonserver ($label) did not become ready: see tritonserver-$label.log"
    return 0
  fi
  for name in "$@"; do
    if [ "$PERF_OK" = 1 ]; then
      for batch in $PERF_BATCHES; do
        [ "$batch" -le "${MAX_BATCH[$name]}" ] || continue
        # Count windows (at least PERF_REQUESTS requests and 1 s each) suit fast GPU engines and
        # slow CPU fallbacks alike, where a fixed time window would hold too few slow requests.
        attempt "perf_analyzer $label $name batch $batch" "$PERF_ANALYZER" -m "$name" \
          -u "127.0.0.1:$TRITON_GRPC_PORT" -i grpc -b "$batch" --concurrency-range "$PERF_CONCURRENCY" \
          --measurement-mode=count_windows "--measurement-request-count=$PERF_REQUESTS" \
          --stability-percentage=20 -f "$OUT/perf_analyzer-$label-$name-b$batch.csv"
      done
    fi
    attempt "throughput $name ($label)" "$PY" -m benchmarks.throughput --card "${CARD[$name]}" \
      --backends triton --triton-url "127.0.0.1:$TRITON_GRPC_PORT" --triton-protocol grpc \
      --batches "$THROUGHPUT_BATCHES" --out-dir "$OUT" --name "throughput-$name-$label"
  done
  echo "+ stop tritonserver ($label)"
  stop_triton
}

stage_triton() {
  section "6. triton: tritonserver on loopback, perf_analyzer and benchmarks.throughput"
  local label repo precision name plan served
  if [ -z "$TRITON_HOME" ]; then
    label=triton-python-onnxruntime
    repo="$WORK/repo-$label"
    echo "(bundled tritonserver: Python backend only, so ONNX Runtime on the CPU inside Triton;" \
      "--triton-home serves the TensorRT engines)"
    if render_repo python-onnxruntime "$repo"; then
      measure_triton "$label" "$repo" "${NAMES[@]}"
    else
      fail "triton-repo $label"
    fi
    return 0
  fi
  for precision in fp16 int8; do
    label="triton-tensorrt-$precision"
    repo="$WORK/repo-$label"
    render_repo tensorrt "$repo" || { fail "triton-repo $label"; continue; }
    served=()
    for name in "${NAMES[@]}"; do
      plan="$(engine_path "$name" "$precision")"
      if [ "$DRY_RUN" = 0 ] && [ ! -f "$plan" ]; then
        echo "no $precision engine for $name (its build failed or was refused): not served"
        run rm -rf "${repo:?}/$name"
        continue
      fi
      run mkdir -p "$repo/$name/1"
      run cp "$plan" "$repo/$name/1/model.plan"
      served+=("$name")
    done
    if [ ${#served[@]} -eq 0 ]; then
      fail "$label: no $precision engine to serve"
      continue
    fi
    measure_triton "$label" "$repo" "${served[@]}"
  done
}

# -------------------------------------------------------------------------------------- main

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local option value
  while [ $# -gt 0 ]; do
    option=$1
    value=""
    case "$option" in
      --*=*) value="${option#*=}" option="${option%%=*}" ;;
      --models | --out | --triton-home)
        if [ $# -lt 2 ]; then
          echo "gpu.sh: $option needs a value" >&2
          return 2
        fi
        value=$2
        shift ;;
    esac
    shift
    case "$option" in
      --models) SELECTED=$value ;;
      --out) OUT=$value ;;
      --triton-home) TRITON_HOME=$value ;;
      --skip-build) SKIP_BUILD=1 ;;
      --dry-run) DRY_RUN=1 ;;
      -h | --help) usage; return 0 ;;
      *) echo "gpu.sh: unknown option $option" >&2; usage >&2; return 2 ;;
    esac
  done
  OUT="${OUT:-benchmarks/results/gpu-$(date -u +%Y-%m-%d)}"
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "gpu.sh: $PYTHON not found (set PYTHON=...)" >&2
    return 2
  fi
  read_cards
  if [ ${#ALL_NAMES[@]} -eq 0 ]; then
    echo "gpu.sh: no model cards in $MODELS_DIR/" >&2
    return 2
  fi
  select_models || return 2

  local status=0
  stage_check || status=$?
  [ "$status" = 0 ] || return "$status"
  if [ "$DRY_RUN" = 0 ]; then
    mkdir -p "$OUT"
    : >"$OUT/commands.txt"
    exec > >(tee -a "$OUT/runbook.log") 2>&1
  fi
  trap stop_triton EXIT
  trap 'exit 130' INT TERM
  stage_setup
  stage_record
  stage_build
  stage_direct
  stage_triton

  section "done"
  echo "results in $OUT"
  if [ ${#FAILURES[@]} -gt 0 ]; then
    [ "$DRY_RUN" = 1 ] || printf '%s\n' "${FAILURES[@]}" >"$OUT/failures.txt"
    echo "finished with ${#FAILURES[@]} failure(s):"
    printf '  %s\n' "${FAILURES[@]}"
    return 1
  fi
}

# Sourcing the file defines the functions only (the tests drive the server control this way).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
