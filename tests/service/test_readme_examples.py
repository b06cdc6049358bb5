"""The README's "Using the service" commands and ``serve``'s printed next steps, run as written.

A real service is started the way ``make run`` starts it (``.venv/bin/customs-vision serve`` in a
fresh directory, so the data directory is its ``var/``; the shipped models of ``models/``), on a
free port substituted for 8000. The README's bash blocks then run in order under ``bash -e`` with
``curl`` wrapped to record each call's HTTP status and body, and every call is checked: the status
its route should answer with, a JSON body where the route answers JSON, a PNG where it answers an
image. The document route is checked against what is shipped: 200 with a report when
``models/document.json`` exists, otherwise 503 saying the document model is not available.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.commands.serve import next_steps
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTION = "## Using the service"
README_URL = "http://127.0.0.1:8000"
DOCUMENT_CARD = REPO / "models" / "document.json"
STARTUP_TIMEOUT_S = 60.0
SCRIPT_TIMEOUT_S = 120.0

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("curl") is None or shutil.which("python3") is None,
    reason="the README's commands need bash, curl and python3",
)

# A curl that records every call: arguments (NUL-separated), response headers and body, numbered in
# call order across subshells (``ID=$(curl ...)`` runs the function in one), then passes the body on.
CURL_RECORDER = r"""
set -euo pipefail
curl() {
  local n
  n=$(( $(cat "$CURL_LOG/count") + 1 ))
  echo "$n" > "$CURL_LOG/count"
  printf '%s\0' "$@" > "$CURL_LOG/$n.args"
  command curl -D "$CURL_LOG/$n.headers" "$@" | tee "$CURL_LOG/$n.body"
}
"""


@dataclass(frozen=True)
class Call:
    """One recorded curl call."""

    args: list[str]
    method: str
    path: str
    status: int
    content_type: str
    body: bytes

    def json(self) -> dict[str, object]:
        assert self.content_type.startswith("application/json"), f"{self.method} {self.path}: {self.content_type}"
        data = json.loads(self.body)
        assert isinstance(data, dict), f"{self.method} {self.path}: {data!r}"
        return data

    def output_file(self) -> str | None:
        return self.args[self.args.index("-o") + 1] if "-o" in self.args else None


@dataclass(frozen=True)
class RunningService:
    port: int
    cwd: Path
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return f"--- serve stdout\n{self.stdout.read_text()}\n--- serve stderr\n{self.stderr.read_text()[-4000:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readyz(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:  # 503 while a model is missing: still a JSON answer
        return dict(json.loads(e.read()))
    except OSError:
        return None


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """``customs-vision serve`` as ``make run`` starts it, in a fresh directory with ``.venv/bin``
    pointing at this interpreter's scripts, without any ``CV_*`` setting of the caller."""
    cwd = tmp_path_factory.mktemp("readme")
    script = Path(sys.executable).parent / "customs-vision"
    assert script.exists(), f"{script} is missing: install the project (make setup)"
    (cwd / ".venv" / "bin").mkdir(parents=True)
    (cwd / ".venv" / "bin" / "customs-vision").symlink_to(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CV_")}
    # The machine's cores are shared with the test run; one intra-op thread per model is plenty here.
    env["CV_THREADS"] = "1"
    port = _free_port()
    running = RunningService(port, cwd, cwd / "serve.out", cwd / "serve.err")
    with running.stdout.open("w") as out, running.stderr.open("w") as err:
        proc = subprocess.Popen(
            [".venv/bin/customs-vision", "serve", "--port", str(port), "--log-level", "warning"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"serve exited with {proc.returncode}\n{running.logs()}"
            body = _readyz(running.url)
            missing = body.get("missing") if body is not None else None
            if isinstance(missing, dict) and "still loading" not in missing.values():
                break
            assert time.monotonic() < deadline, f"service not up in {STARTUP_TIMEOUT_S} s\n{running.logs()}"
            time.sleep(0.2)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_recorded(script: str, service: RunningService, log: Path) -> tuple[str, list[Call]]:
    """Run ``script`` with bash in the service's directory; returns its stdout and the curl calls."""
    log.mkdir()
    (log / "count").write_text("0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CV_")}
    env["CURL_LOG"] = str(log)
    proc = subprocess.run(
        ["bash", "-c", CURL_RECORDER + script],
        cwd=service.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"script failed ({proc.returncode})\n{proc.stdout}\n{proc.stderr}\n{service.logs()}"
    calls = [_read_call(log, n) for n in range(1, int((log / "count").read_text()) + 1)]
    return proc.stdout, calls


def _read_call(log: Path, n: int) -> Call:
    args = (log / f"{n}.args").read_bytes().decode().split("\0")[:-1]
    url = next(a for a in args if a.startswith("http://"))
    method = args[args.index("-X") + 1] if "-X" in args else ("POST" if "-F" in args else "GET")
    headers = (log / f"{n}.headers").read_text().splitlines()
    # The last status line: a large upload first gets "HTTP/1.1 100 Continue".
    status = int([h for h in headers if h.startswith("HTTP/")][-1].split()[1])
    content_type = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-type:")), "")
    path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
    return Call(args, method, "/" + path, status, content_type, (log / f"{n}.body").read_bytes())


def _readme_script(port: int) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    script = "\n".join(blocks)
    assert README_URL in script, f"the README's examples no longer use {README_URL}"
    return script.replace(README_URL, f"http://127.0.0.1:{port}")


def _png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n")


def test_readme_examples_run_as_written(service: RunningService, tmp_path: Path) -> None:
    script = _readme_script(service.port)
    stdout, calls = _run_recorded(script, service, tmp_path / "curl")

    owners = dict(re.findall(r"^(authority|writer) \([a-z ]+\): (\S+)$", stdout, flags=re.MULTILINE))
    assert set(owners) == {"authority", "writer"}, stdout
    named = set(re.findall(r"owner=([\w-]+)", script))
    assert named == set(owners.values()), f"the README names owners {named}, synth samples printed {owners}"

    document_shipped = DOCUMENT_CARD.exists()
    seen: dict[str, int] = {}
    for call in calls:
        where = f"{call.method} {call.path} -> {call.status}: {call.body[:300]!r}\n{service.logs()}"
        route = re.sub(r"/v1/(specimens|reports)/[^/]+", r"/v1/\1/{id}", call.path)
        seen[f"{call.method} {route}"] = seen.get(f"{call.method} {route}", 0) + 1
        match call.method, route:
            case "POST", "/v1/xray/inspect":
                assert call.status == 200, where
                report = call.json()
                assert report["modality"] == "xray" and report["risk"] in ("clear", "review", "alarm"), where
            case "POST", "/v1/specimens":
                assert call.status == 201, where
                assert call.json()["owner"] in owners.values(), where
            case "POST", "/v1/documents/inspect":
                if document_shipped:
                    assert call.status == 200, where
                    assert call.json()["modality"] == "document", where
                else:
                    assert call.status == 503, where
                    error = call.json()
                    assert error["error"] == "model_unavailable", where
                    assert "'document' model is not available" in str(error["detail"]), where
            case "POST", "/v1/compare":
                assert call.status == 200, where
                compared = call.json()
                assert compared["owner"] == owners["authority"], where
                assert compared["verdict"] in ("genuine", "forged", "inconclusive"), where
            case "GET", "/v1/specimens":
                assert call.status == 200, where
                listed = call.json()
                assert listed["count"] == 1 and listed["specimens"][0]["owner"] == owners["authority"], where  # type: ignore[index]
            case "GET", "/v1/reports/{id}":
                assert call.status == 200, where
                assert call.json()["modality"] == "xray", where
            case "GET", "/v1/reports/{id}/annotated.png":
                assert call.status == 200 and call.content_type == "image/png", where
                out = call.output_file()
                assert out is not None and _png((service.cwd / out).read_bytes()), where
            case "DELETE", "/v1/specimens/{id}":
                assert call.status == 204, where
            case _:
                pytest.fail(f"the README calls a route this test does not check: {where}")

    # Every step the README promises is there, in one run.
    assert seen == {
        "POST /v1/xray/inspect": 1,
        "POST /v1/specimens": 2,
        "POST /v1/documents/inspect": 1,
        "POST /v1/compare": 2,
        "GET /v1/specimens": 1,
        "GET /v1/reports/{id}": 1,
        "GET /v1/reports/{id}/annotated.png": 1,
        "DELETE /v1/specimens/{id}": 1,
    }


def test_serve_prints_next_steps_that_work(service: RunningService, tmp_path: Path) -> None:
    printed = service.stdout.read_text()
    assert f"serving on {service.url}" in printed
    steps = printed.split("Next steps", 1)[1].splitlines()[1:]
    commands = [line.strip() for line in steps if line.startswith("  ") and not line.strip().startswith("#")]
    assert commands[0] == "export CV_DATA_DIR=var", printed
    assert any(c.startswith("SCANNER=$(.venv/bin/customs-vision apikey create") for c in commands), printed

    _, calls = _run_recorded("\n".join(commands), service, tmp_path / "curl")
    assert [(c.method, c.path, c.status) for c in calls] == [("POST", "/v1/xray/inspect", 200)], service.logs()
    assert calls[0].json()["modality"] == "xray"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),  # a wildcard bind is not an address to call
        ("::", "http://[::1]:8000"),
        ("10.1.2.3", "http://10.1.2.3:8000"),
    ],
)
def test_next_steps_call_an_address_the_service_answers_on(host: str, url: str) -> None:
    steps = next_steps(Settings(host=host, port=8000, data_dir=Path("var")), "customs-vision")
    assert f"-F image=@samples/scan.jpg {url}/v1/xray/inspect" in steps


def test_next_steps_quote_the_data_dir_and_never_print_a_database_url() -> None:
    url = "postgresql://cv:secret@db/cv"
    steps = next_steps(Settings(data_dir=Path("my data"), database_url=url), ".venv/bin/customs-vision")
    assert "export CV_DATA_DIR='my data'" in steps
    assert "SCANNER=$(.venv/bin/customs-vision apikey create --role scanner)" in steps
    assert "secret" not in steps and "same CV_DATABASE_URL" in steps
