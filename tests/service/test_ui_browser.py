"""The clerk page end to end: the real app on a loopback port, driven in headless Chromium.

Uses Debian's ``chromium`` (``/usr/bin/chromium``, or ``CV_CHROMIUM``) through Playwright, whose own
browser download is not available here. Skipped, with the reason, when either is missing.

Set ``CV_UI_SCREENSHOTS=/some/dir`` to keep screenshots of the page at desktop and narrow widths.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from detectors.document import DOCUMENT_CLASSES, MarkDetector
from service.app import create_app
from service.security import create_api_key
from service.settings import Settings
from tests.service.fixtures import document_page, png, xray_scan
from vision.types import Detections

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("CV_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("CV_UI_SCREENSHOTS")
OWNER = "서울세관 Seoul Customs"  # Hangul must render and round-trip through the form

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
expect = sync_api.expect
if not CHROMIUM.is_file():
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or CV_CHROMIUM)", allow_module_level=True)


# ------------------------------------------------------------------------------- live service


@dataclass
class LiveService:
    """The app served by uvicorn on loopback, with one key per role."""

    url: str
    app: FastAPI
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, method: str, path: str, role: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)


@contextmanager
def live_service(data_dir: Path, models_dir: Path) -> Iterator[LiveService]:
    """Serve the app with the tiny test models in a thread; stop it on exit."""
    settings = Settings(
        data_dir=data_dir,
        models_dir=models_dir,
        threads=1,
        max_wait_ms=2.0,
        max_upload_bytes=2 * 1024 * 1024,
        xray_tiles=False,  # the tiny X-ray model's box is at a fixed place: see conftest.running_service
    )
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # the port is ours before the server starts: no race for a free one
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ui-test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not (server.started and getattr(app.state, "pipeline", None) is not None):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        keys = {r: create_api_key(app.state.engine, role=r, name=f"ui-{r}")[0] for r in ("scanner", "clerk", "admin")}
        yield LiveService(url=f"http://127.0.0.1:{port}", app=app, keys=keys)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("ui-var"), models_dir) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A fresh browser context (its own sessionStorage) on the page, recording what went wrong."""

    page: Any
    context: Any
    live: LiveService
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # every request to this service, without the query

    def log_in(self, role: str) -> None:
        """Log in with the keyboard only: the key field has focus when the page opens."""
        self.page.goto(self.live.url + "/")
        expect(self.page.get_by_label("API key")).to_be_focused()
        self.page.keyboard.type(self.live.keys[role])
        self.page.keyboard.press("Enter")
        expect(self.page.get_by_role("button", name="Log out")).to_be_visible()
        expect(self.page.get_by_role("heading", name="Inspect an image")).to_be_focused()

    def expect_signed_in_as(self, role: str, shown: str) -> None:
        """The top bar names the key (as the audit log does) and shows its role."""
        label = self.page.locator("#session-label")
        expect(label).to_have_text(f"Signed in as ui-{role} · role: {shown}")
        expect(label.locator(".session-name")).to_have_text(f"ui-{role}")

    def upload(self, selector: str, name: str, data: bytes, mime: str = "image/png") -> None:
        self.page.locator(selector).set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])

    def inspect(self, modality: str, name: str, data: bytes, mime: str = "image/png") -> None:
        self.page.get_by_label("X-ray scan" if modality == "xray" else "Document").check()
        self.upload("#inspect-image", name, data, mime)
        self.page.get_by_role("button", name="Inspect", exact=True).click()

    def assert_fits(self) -> None:
        """Nothing is wider than the window, at desktop width and on a phone-sized one."""
        for width in (1280, 390):
            self.page.set_viewport_size({"width": width, "height": 900})
            assert self.page.evaluate("document.documentElement.scrollWidth") <= width, f"wider than {width} px"
        self.page.set_viewport_size({"width": 1280, "height": 900})

    def screenshot(self, name: str) -> None:
        if not SCREENSHOTS:
            return
        out = Path(SCREENSHOTS)
        out.mkdir(parents=True, exist_ok=True)
        for width in (1280, 390):
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def tab(browser: Any, live: LiveService) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    t = Tab(page=page, context=context, live=live)
    page.on("pageerror", lambda err: t.page_errors.append(str(err)))
    page.on("console", lambda msg: t.page_errors.append(msg.text) if "Content Security Policy" in msg.text else None)

    def only_this_service(route: Any) -> None:
        if route.request.url.startswith(live.url + "/") or route.request.url.startswith("blob:"):
            if route.request.url.startswith(live.url):
                t.paths.append(route.request.url[len(live.url) :].split("?")[0])
            route.continue_()
        else:
            t.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_this_service)
    try:
        yield t
        assert t.page_errors == [], "the page's script raised"
        assert t.foreign_requests == [], "the page asked for something outside this service"
    finally:
        context.close()


def _canvas_pixel(page: Any, selector: str, x: float, y: float) -> list[int]:
    """RGB of a canvas pixel; ``x, y`` in the canvas's own pixels."""
    return list(
        page.evaluate(
            "([sel, x, y]) => Array.from(document.querySelector(sel).getContext('2d')"
            ".getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3))",
            [selector, x, y],
        )
    )


def _saturation(rgb: list[int]) -> int:
    return max(rgb) - min(rgb)


# --------------------------------------------------------------------------------------- tests


def test_an_unknown_key_gets_a_readable_error_and_is_not_kept(tab: Tab) -> None:
    page = tab.page
    page.goto(tab.live.url + "/")
    page.get_by_label("API key").fill("cv_00000000_not-a-real-key")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_have_text(re.compile(r"^Key not recognised: The API key is unknown"))
    expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert tab.context.cookies() == [] and "cv_" not in page.url
    tab.screenshot("login-refused")


def test_xray_upload_shows_boxes_table_and_colour_coded_risk(tab: Tab) -> None:
    tab.log_in("clerk")
    tab.expect_signed_in_as("clerk", "clerk")
    page = tab.page
    page.get_by_label("X-ray scan").check()
    expect(page.get_by_label("Claimed owners")).to_be_hidden()  # documents only

    scan = xray_scan(dark=True, seed=5)
    tab.inspect("xray", "scan.png", png(scan))
    risk = page.locator("#report-risk")
    expect(risk).to_contain_text("ALARM")
    expect(risk).to_have_class(re.compile(r"\brisk-alarm\b"))
    rows = page.locator("#detections-body tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("handgun")

    # The box drawn on the canvas: coloured on its edge, the grey scan left alone inside it.
    expect(page.locator("#report-canvas")).to_have_attribute("data-drawn", "true")
    box = [float(v) for v in re.findall(r"[\d.]+", rows.first.locator("td").nth(3).inner_text())]
    x1, y1, x2, y2 = box
    up = page.evaluate("document.querySelector('#report-canvas').width") / scan.shape[1]
    assert _saturation(_canvas_pixel(page, "#report-canvas", (x1 + x2) / 2 * up, y2 * up)) > 80
    assert _saturation(_canvas_pixel(page, "#report-canvas", x1 * up, (y1 + y2) / 2 * up)) > 80
    assert _saturation(_canvas_pixel(page, "#report-canvas", (x1 + x2) / 2 * up, (y1 + 2 * y2) / 3 * up)) < 20
    tab.assert_fits()
    tab.screenshot("xray-alarm")

    tab.inspect("xray", "clear.png", png(xray_scan(dark=False, seed=6)))
    expect(risk).to_have_class(re.compile(r"\brisk-clear\b"))
    expect(risk).to_contain_text("CLEAR")
    expect(page.locator("#detections-empty")).to_be_visible()

    page.reload()  # the tab keeps its session
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    tab.expect_signed_in_as("clerk", "clerk")  # asked again: the key may have been revoked meanwhile
    assert tab.paths.count("/v1/whoami") == 2
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_admin_registers_a_specimen_and_a_document_shows_it_side_by_side(tab: Tab) -> None:
    live, page = tab.live, tab.page
    sheet = document_page(seed=3)
    # The stamp as the service cuts it out, to register as the claimed owner's specimen.
    found = live.api("POST", "/v1/documents/inspect", "scanner", files={"image": ("d.png", png(sheet))}).json()
    dets = Detections(
        xyxy=np.array([d["box"] for d in found["detections"]], np.float32),
        confidence=np.array([d["confidence"] for d in found["detections"]], np.float32),
        class_id=np.array([d["class_id"] for d in found["detections"]]),
        class_names=DOCUMENT_CLASSES,
    )
    stamp_crop = MarkDetector.crops(sheet, dets)[0]

    tab.log_in("admin")
    tab.expect_signed_in_as("admin", "admin")
    expect(page.locator("#register-locked")).to_be_hidden()
    page.locator("#register-kind").select_option("stamp")
    page.locator("#register-owner").fill(OWNER)
    page.get_by_label("Label").fill("2024 seal")
    tab.upload("#register-image", "stamp.png", png(stamp_crop))
    page.get_by_role("button", name="Register specimen").click()
    expect(page.locator("#register-status")).to_have_text(f"Registered the stamp of {OWNER}.")
    row = page.locator("#specimens-rows tr", has_text=OWNER)
    expect(row).to_have_count(1)
    expect(row.locator("img")).to_have_js_property("complete", True)

    page.get_by_label("Claimed owners").fill(OWNER)
    tab.inspect("document", "page.png", png(sheet))
    cards = page.locator(".match-card")
    expect(cards).to_have_count(2)
    stamp_card = page.locator(".match-card", has_text="stamp")
    expect(stamp_card).to_contain_text(OWNER)
    expect(stamp_card).to_contain_text("(claimed)")
    expect(stamp_card.locator(".verdict").first).to_have_text("genuine")
    shown = stamp_card.locator(".similarity-value").inner_text()
    assert re.fullmatch(r"\d{1,3}\.\d{2} %", shown)

    # The percentage is the report's, to two decimals.
    report_id = re.search(r"report ([0-9a-f-]{36})", page.locator("#report-meta").inner_text()).group(1)  # type: ignore[union-attr]
    report = live.api("GET", f"/v1/reports/{report_id}", "clerk").json()
    best = next(m for m in report["matches"] if m["detection"] == 0)
    assert best["owner"] == OWNER and best["claimed"] and shown == f"{best['similarity']:.2f} %"

    # Side by side: the crop cut from the document and the registered specimen's image.
    crop_size = stamp_card.locator("canvas.mark-image").evaluate("c => [c.width, c.height]")
    assert min(crop_size) > 0
    expect(stamp_card.locator("img.mark-image")).to_have_js_property("complete", True)
    assert stamp_card.locator("img.mark-image").evaluate("i => i.naturalWidth") == stamp_crop.shape[1]
    expect(page.locator(".match-card", has_text="signature")).to_contain_text("No signature specimens")
    tab.assert_fits()
    tab.screenshot("document-match")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download annotated PNG").click()
    assert download.value.suggested_filename == f"report-{report_id}-annotated.png"
    assert Path(download.value.path()).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("^Delete the stamp of")).click()
    expect(page.locator("#specimens-status")).to_contain_text("Deleted the stamp of")
    expect(page.locator("#specimens-rows tr", has_text=OWNER)).to_have_count(0)


def test_a_non_image_upload_reads_plainly_and_a_clerk_is_not_offered_registration(tab: Tab) -> None:
    live, page = tab.live, tab.page
    registered = live.api(
        "POST",
        "/v1/specimens",
        "admin",
        files={"image": ("s.png", png(xray_scan(dark=False, seed=1, size=(40, 80))))},
        data={"kind": "signature", "owner": "Busan Customs"},
    )
    assert registered.status_code == 201, registered.text
    try:
        tab.log_in("clerk")
        tab.inspect("document", "notes.txt", b"customs declaration, not a picture\n", "text/plain")
        expect(page.locator("#inspect-error")).to_contain_text("not an image the service can read")
        expect(page.locator("#report-section")).to_be_hidden()

        # A clerk reads specimens but may not register or delete them: neither is offered.
        row = page.locator("#specimens-rows tr", has_text="Busan Customs")
        expect(row).to_have_count(1)
        expect(row.get_by_role("button")).to_have_count(0)
        expect(page.locator("#register-form")).to_be_hidden()
        expect(page.locator("#register-locked")).to_be_visible()
        tab.assert_fits()
        tab.screenshot("clerk-errors")
    finally:
        live.api("DELETE", f"/v1/specimens/{registered.json()['id']}", "admin")


def test_a_scanner_key_inspects_and_sees_its_upload_without_reading_reports(tab: Tab) -> None:
    tab.log_in("scanner")
    page = tab.page
    tab.expect_signed_in_as("scanner", "scanner (inspection only)")
    expect(page.locator("#specimens-locked")).to_be_visible()
    expect(page.locator("#specimens-body")).to_be_hidden()
    tab.inspect("xray", "scan.png", png(xray_scan(dark=True, seed=8)))
    expect(page.locator("#report-risk")).to_contain_text("ALARM")
    # Drawn from the local file, since a scanner key may not read stored reports.
    expect(page.locator("#report-canvas")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#report-error")).to_be_hidden()
    # The role came from /v1/whoami: the page never tried routes that a scanner key may not open.
    assert "/v1/whoami" in tab.paths
    assert [p for p in tab.paths if p.startswith(("/v1/specimens", "/v1/reports"))] == []
