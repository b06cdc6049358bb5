"""benchmarks/gpu.sh, the GPU runbook, checked on a machine without a GPU.

The runbook itself needs a GPU. What can be checked here: its dry run prints, as commands a shell
reads back unchanged, every step for every shipped model card; it refuses to run without a GPU
with a plain message and without writing anything; and its server control (start in a process
group, wait for readiness, stop the whole group) works against the real bundled tritonserver.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from deploy.triton_repo import model_cards

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu.sh"
BASH = shutil.which("bash") or "/bin/bash"
CARDS = {json.loads(p.read_text())["name"]: p for p in model_cards(REPO / "models")}
PERF_BATCHES = (1, 2, 4, 8, 16, 32)


def gpu_sh(*args: str, path: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the script as a user would, with this interpreter as its PYTHON (it reads the cards with it)."""
    env = {**os.environ, "PYTHON": sys.executable}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [BASH, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def commands(stdout: str) -> list[list[str]]:
    """The printed commands (``+ ...`` lines), split as a shell would split them; comments dropped."""
    return [shlex.split(line[2:], comments=True) for line in stdout.splitlines() if line.startswith("+ ")]


def find(cmds: Sequence[list[str]], *words: str) -> list[list[str]]:
    """The commands that contain every one of ``words`` as an argument."""
    return [c for c in cmds if all(w in c for w in words)]


def failing_nvidia_smi(tmp_path: Path) -> str:
    """A PATH whose nvidia-smi fails as it does on a machine whose driver is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: could not communicate with the driver' >&2\nexit 9\n")
    fake.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_shipped_cards_are_found() -> None:
    assert CARDS, "models/ holds no model card: the runbook would have nothing to measure"


def test_the_script_parses() -> None:
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True)


def test_dry_run_prints_every_step_for_every_card(tmp_path: Path) -> None:
    out = tmp_path / "results"
    work_existed = (REPO / "var" / "gpu-bench").exists()
    # A failing nvidia-smi on PATH: the dry run must not need a GPU.
    result = gpu_sh("--dry-run", "--out", str(out), path=failing_nvidia_smi(tmp_path))
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)

    assert find(cmds, "make", ".venv/.installed")
    assert find(cmds, "install", "-c", "constraints.txt", "-e", ".[gpu]")
    assert find(cmds, "bash", "scripts/setup-triton.sh")
    assert find(cmds, "--target", "var/gpu-bench/tools", "perf-analyzer==2.60.0")
    assert find(cmds, "nvidia-smi", "-q")
    for name, card in CARDS.items():
        max_batch = json.loads(card.read_text())["spec"]["max_batch"]
        for precision in ("fp16", "int8"):
            (build,) = find(cmds, "build-engine", name, "--precision", precision)
            assert build[build.index("--out") + 1] == f"var/gpu-bench/engines/{name}-{precision}/model.plan"
            assert build[build.index("--heldout") + 1] == f"var/gpu-bench/heldout/{name}"
            assert build[-1] == f">{out}/build-{name}-{precision}.json"
        (measured,) = find(cmds, "benchmarks.throughput", "--name", f"throughput-{name}-gpu")
        assert measured[measured.index("--card") + 1] == str(card.relative_to(REPO))
        backends = measured[measured.index("--backends") + 1].split(",")
        assert {"tensorrt-fp16", "tensorrt-int8", "onnxruntime-fp32"} <= set(backends)
        assert measured[measured.index("--device") + 1] == "cuda"
        assert measured[measured.index("--out-dir") + 1] == str(out)
        perf = find(cmds, "-m", name, "-i", "grpc", "--concurrency-range")
        assert [int(c[c.index("-b") + 1]) for c in perf] == [b for b in PERF_BATCHES if b <= max_batch]
        assert all(
            c[c.index("-f") + 1] == f"{out}/perf_analyzer-triton-python-onnxruntime-{name}-b{c[c.index('-b') + 1]}.csv"
            for c in perf
        )
        (served,) = find(cmds, "--backends", "triton", "--name", f"throughput-{name}-triton-python-onnxruntime")
        assert served[served.index("--triton-url") + 1] == "127.0.0.1:8001"
    (repo,) = find(cmds, "triton-repo", "--variant", "python-onnxruntime")
    (server,) = [c for c in cmds if c[0] == "tritonserver"]
    assert f"--model-repository={repo[repo.index('--out') + 1]}" in server
    assert "--http-address=127.0.0.1" in server and "--grpc-address=127.0.0.1" in server

    # In the runbook's order: every build, then the direct measurements, then the server.
    builds = [i for i, c in enumerate(cmds) if "build-engine" in c]
    direct = [i for i, c in enumerate(cmds) if "benchmarks.throughput" in c and "triton" not in c]
    assert max(builds) < min(direct) and max(direct) < cmds.index(server)

    # Nothing was written or started.
    assert not out.exists()
    assert (REPO / "var" / "gpu-bench").exists() == work_existed


def test_dry_run_with_a_triton_installation_serves_each_precision(tmp_path: Path) -> None:
    name = sorted(CARDS)[0]
    result = gpu_sh("--dry-run", "--models", name, "--triton-home", "/opt/tritonserver", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert not find(cmds, "bash", "scripts/setup-triton.sh"), "no bundled server is needed then"
    servers = [c for c in cmds if c[0] == "/opt/tritonserver/bin/tritonserver"]
    assert len(servers) == 2
    for precision, server in zip(("fp16", "int8"), servers, strict=True):
        repo = f"var/gpu-bench/repo-triton-tensorrt-{precision}"
        assert find(cmds, "triton-repo", "--out", repo, "--variant", "tensorrt")
        assert find(cmds, "cp", f"var/gpu-bench/engines/{name}-{precision}/model.plan", f"{repo}/{name}/1/model.plan")
        assert f"--model-repository={repo}" in server and "--backend-directory=/opt/tritonserver/backends" in server
        assert find(cmds, "--backends", "triton", "--name", f"throughput-{name}-triton-tensorrt-{precision}")


def test_models_option_selects_cards() -> None:
    name, *others = sorted(CARDS)
    result = gpu_sh("--dry-run", "--models", name)
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert find(cmds, "build-engine", name)
    for other in others:
        assert not find(cmds, "build-engine", other) and not find(cmds, "-m", other)
        # Rendered with every card, then the unselected model is removed from the repository.
        assert find(cmds, "rm", "-rf", f"var/gpu-bench/repo-triton-python-onnxruntime/{other}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--models", "no_such_model", "--dry-run"), "no model card named 'no_such_model'"),
        (("--frobnicate",), "unknown option --frobnicate"),
        (("--out",), "--out needs a value"),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...], message: str) -> None:
    result = gpu_sh(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_without_a_gpu_it_stops_with_a_plain_message(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = gpu_sh("--out", str(out), path=failing_nvidia_smi(tmp_path))
    assert result.returncode == 2
    assert "no NVIDIA GPU here" in result.stderr and "--dry-run" in result.stderr
    assert not find(commands(result.stdout), "make"), "nothing may run before the GPU check"
    assert not out.exists()


def test_without_nvidia_smi_it_stops_with_a_plain_message(tmp_path: Path) -> None:
    # A PATH with only what the script needs before its GPU check, so nvidia-smi is surely absent.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date", "nproc"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    result = gpu_sh("--out", str(tmp_path / "results"), path=str(bin_dir))
    assert result.returncode == 2
    assert "nvidia-smi is missing" in result.stderr


@pytest.mark.parametrize("word", ["plain", "it's", 'say "hi"', "$HOME", "a b", "", ".[gpu]", "x;y"])
def test_printed_commands_read_back_unchanged(word: str) -> None:
    script = f"source {shlex.quote(str(SCRIPT))}; quote {shlex.quote(word)} end"
    printed = subprocess.run([BASH, "-c", script], capture_output=True, text=True, check=True).stdout
    assert shlex.split(printed) == [word, "end"]


# --- the server control, against the real bundled tritonserver ---------------------------------


def drive(tmp_path: Path, repo: Path, timeout_s: int) -> subprocess.CompletedProcess[str]:
    """Source the script, start a server on ``repo``, print its pid and readiness, stop it."""
    from deploy.triton_server import free_port

    script = f"""
source {shlex.quote(str(SCRIPT))}
cd {shlex.quote(str(REPO))}
DRY_RUN=0 OUT={shlex.quote(str(tmp_path))} WORK={shlex.quote(str(tmp_path / "work"))}
TRITON_HTTP_PORT={free_port()} TRITON_GRPC_PORT={free_port()} TRITON_START_TIMEOUT_S={timeout_s}
if start_triton {shlex.quote(str(repo))} {shlex.quote(str(tmp_path / "server.log"))}; then
  echo "pid $TRITON_PID"
  ready && echo ready
  stop_triton
  echo "stopped [$TRITON_PID]"
else
  echo "not started [$TRITON_PID]"
fi
"""
    return subprocess.run([BASH, "-c", script], capture_output=True, text=True, timeout=timeout_s + 60)


@pytest.mark.triton
def test_server_control_starts_and_stops_the_bundled_tritonserver(tmp_path: Path) -> None:
    from deploy.triton_repo import render_model
    from deploy.triton_server import find_tritonserver
    from tests.deploy.fixtures import make_tiny_embedder

    if find_tritonserver() is None:
        pytest.skip("no bundled tritonserver (bash scripts/setup-triton.sh)")
    repo = tmp_path / "repo"
    render_model(make_tiny_embedder(tmp_path / "models"), repo, variant="python-onnxruntime")
    result = drive(tmp_path, repo, timeout_s=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ready" in lines and "stopped []" in lines, result.stdout + result.stderr
    pid = int(next(line for line in lines if line.startswith("pid "))[4:])
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the server and its Python-backend stubs are gone
    assert "tritonserver (bundled)" in (tmp_path / "commands.txt").read_text()


@pytest.mark.triton
def test_server_control_reports_a_server_that_does_not_start(tmp_path: Path) -> None:
    from deploy.triton_repo import render_model
    from deploy.triton_server import find_tritonserver
    from tests.deploy.fixtures import make_tiny_embedder

    if find_tritonserver() is None:
        pytest.skip("no bundled tritonserver (bash scripts/setup-triton.sh)")
    # A TensorRT config without its engine: the bundled server has no TensorRT backend and exits.
    repo = tmp_path / "repo"
    render_model(make_tiny_embedder(tmp_path / "models"), repo, variant="tensorrt")
    result = drive(tmp_path, repo, timeout_s=60)
    assert "not started []" in result.stdout, result.stdout + result.stderr
    assert "failed to load" in result.stderr  # the log's tail, shown to the operator
