"""Find, start and stop a local Triton Inference Server, for tests and CPU benchmarks.

Production runs NVIDIA's Triton container (``deploy/k8s/``). On machines without it, the
``nvidia-pytriton`` wheel ships a real ``tritonserver`` binary with the Python backend;
``scripts/setup-triton.sh`` installs it, with ONNX Runtime, into its own virtual environment
(``.triton-venv/``, because the wheel needs ``numpy<2``). Three details make that binary work on a
plain model repository, and :class:`TritonServer` takes care of each:

* The wheel keeps one Python-backend stub per Python version in ``python_backend_stubs/``; the
  backend looks for ``triton_python_backend_stub`` beside ``libtriton_python.so``. A backend folder
  with the stub matching the environment's Python is assembled in a private work folder.
* The stub is linked against ``libpython3.X.so``. The system copy of that library may be an older
  patch release than the environment's interpreter, which breaks the stub at start-up
  (``'_thread.RLock' object has no attribute '_recursion_count'``), so ``LD_LIBRARY_PATH`` puts the
  interpreter's own ``LIBDIR`` first, after the wheel's bundled libraries.
* The embedded interpreter finds its ``sys.prefix`` by looking up ``python3`` on ``PATH``; with the
  environment's ``bin/`` first it picks up that environment's site-packages (numpy<2, onnxruntime),
  which the served ``model.py`` files import.

Servers listen on loopback only, on free ports chosen at start, and are stopped with SIGTERM (then
SIGKILL) by process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

#: Environment variable naming the Triton virtual environment (default ``<repo>/.triton-venv``).
TRITON_VENV_ENV = "CV_TRITON_VENV"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO_ROOT / ".triton-venv"
SETUP_HINT = "bash scripts/setup-triton.sh"


class TritonServerError(RuntimeError):
    """The server binary is missing, or the server did not start or stop as asked."""


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pieces of a pip-installed Triton server are.

    Attributes:
        binary: the ``tritonserver`` executable.
        python_backend: folder with ``libtriton_python.so`` and ``triton_python_backend_utils.py``.
        stub: the Python-backend stub built for the environment's Python version.
        libs: the wheel's bundled shared libraries (``nvidia_pytriton.libs``).
        venv_bin: ``bin/`` of the environment whose packages the served models import.
        python_libdir: the environment interpreter's ``LIBDIR`` (holds its ``libpython3.X.so``).
    """

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path
    venv_bin: Path
    python_libdir: Path

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Process environment for the server (see the module docstring for why each entry)."""
        env = dict(os.environ if base is None else base)
        library_path = [str(self.libs), str(self.python_libdir)]
        if env.get("LD_LIBRARY_PATH"):
            library_path.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
        env["PATH"] = os.pathsep.join([str(self.venv_bin), env.get("PATH", "")])
        # A PYTHONPATH or PYTHONHOME meant for the caller's interpreter would shadow the environment's.
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        return env


def find_tritonserver(venv: str | Path | None = None) -> TritonInstallation | None:
    """Locate the ``tritonserver`` installed by ``scripts/setup-triton.sh``.

    Args:
        venv: the Triton virtual environment; default ``$CV_TRITON_VENV`` or ``<repo>/.triton-venv``.

    Returns:
        The installation, or ``None`` when the environment or any part of the server is missing.
    """
    root = Path(venv or os.environ.get(TRITON_VENV_ENV) or DEFAULT_VENV)
    python = root / "bin" / "python"
    if not python.is_file():
        return None
    try:
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import sys, sysconfig; print(sysconfig.get_paths()['purelib']); "
                "print(sysconfig.get_config_var('LIBDIR')); print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    site, libdir, version = probe.stdout.split()
    server_root = Path(site) / "pytriton" / "tritonserver"
    install = TritonInstallation(
        binary=server_root / "bin" / "tritonserver",
        python_backend=server_root / "backends" / "python",
        stub=server_root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=Path(site) / "nvidia_pytriton.libs",
        venv_bin=root / "bin",
        python_libdir=Path(libdir),
    )
    required = (install.binary, install.python_backend / "libtriton_python.so", install.stub, install.libs)
    return install if all(p.exists() for p in required) else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TritonServer:
    """One ``tritonserver`` process serving a model repository on loopback.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`stop` followed by
    :meth:`start` brings the server back on the same ports (what the outage tests need).

    Args:
        model_repository: the repository folder (``<model>/config.pbtxt``, ``<model>/<version>/``).
        installation: from :func:`find_tritonserver`; default: found, or :class:`TritonServerError`.
        host: address to listen on; loopback unless you mean to expose it.
        http_port: HTTP port; default a free one.
        grpc_port: gRPC port; default a free one.
        startup_timeout_s: how long :meth:`start` waits for ``/v2/health/ready``.
        extra_args: more ``tritonserver`` options, e.g. ``("--log-verbose=1",)``.

    Raises:
        TritonServerError: no installation was given or found.
    """

    def __init__(
        self,
        *,
        model_repository: str | Path,
        installation: TritonInstallation | None = None,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        startup_timeout_s: float = 60.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        found = installation or find_tritonserver()
        if found is None:
            raise TritonServerError(f"no tritonserver found; install it with: {SETUP_HINT}")
        self.installation = found
        self.model_repository = Path(model_repository).resolve()
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self._workdir = Path(tempfile.mkdtemp(prefix="cv-triton-"))
        self._backends = self._assemble_backends()
        self._log_path = self._workdir / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint (tritonclient's form, without a scheme)."""
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The ``tritonserver`` command line."""
        return [
            str(self.installation.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={self._backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=false",
            # Tests stop and restart the server; in-flight requests get a short grace period.
            "--exit-timeout-secs=5",
            *self.extra_args,
        ]

    def start(self) -> Self:
        """Start the server and wait until it reports ready.

        Raises:
            TritonServerError: it is already running, exited during start-up, or did not become
                ready in time (the message ends with the tail of its log).
        """
        if self.running:
            raise TritonServerError(f"tritonserver is already running (pid {self._process.pid})")  # type: ignore[union-attr]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.installation.environment(),
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise TritonServerError(
                    f"tritonserver exited with status {self._process.returncode} during start-up:\n{self.log_tail()}"
                )
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise TritonServerError(f"tritonserver not ready after {self.startup_timeout_s:.0f} s:\n{self.log_tail()}")

    def is_ready(self) -> bool:
        """Whether ``GET /v2/health/ready`` answers 200 (server up and every model loaded)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1.0) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout_s``. Does nothing if not running."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # The process group holds the Python-backend stubs the server started.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log (for error messages)."""
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop the server and delete its work folder."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _assemble_backends(self) -> Path:
        """A backend folder whose ``python/`` holds the library, its utilities and the right stub."""
        backends = self._workdir / "backends"
        target = backends / "python"
        target.mkdir(parents=True)
        for item in self.installation.python_backend.iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
        shutil.copy2(self.installation.stub, target / "triton_python_backend_stub")
        return backends
