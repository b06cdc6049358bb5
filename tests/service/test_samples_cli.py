"""``customs-vision synth samples``: the README's example files, deterministic by seed."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from detectors.synth.documents import PageConfig, render_page
from detectors.synth.xray import generate_scan
from service.cli import main
from service.commands.synth_samples import DPI, SAMPLE_FILES, Samples, write_samples
from vision.imageio import decode_image

IMAGES = tuple(SAMPLE_FILES)


@dataclass(frozen=True)
class Twice:
    """Seed 0 written twice: by the library into ``a``, by the CLI into ``b`` (with what it printed)."""

    a: Path
    b: Path
    samples: Samples
    printed: str


@pytest.fixture(scope="module")
def twice(tmp_path_factory: pytest.TempPathFactory) -> Twice:
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    samples = write_samples(a, 0)
    # The second folder already holds a file of a sample's name: it is replaced, not refused.
    (b / "scan.jpg").write_bytes(b"stale")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["synth", "samples", "--out", str(b)]) == 0
    return Twice(a, b, samples, out.getvalue())


def test_same_seed_same_bytes(twice: Twice) -> None:
    for name in (*IMAGES, "README.txt"):
        assert (twice.a / name).read_bytes() == (twice.b / name).read_bytes(), name


def test_every_image_decodes_with_the_service_decoder(twice: Twice) -> None:
    sizes = {name: decode_image((twice.a / name).read_bytes()).shape for name in IMAGES}
    assert sizes["scan.jpg"] == (640, 640, 3)
    assert sizes["declaration.png"] == (round(297 * DPI / 25.4), round(210 * DPI / 25.4), 3)  # A4
    for crop in ("seal.png", "signature.png", "crop.png", "forged-crop.png"):
        h, w, _ = sizes[crop]
        assert min(h, w) >= 32 and max(h, w) <= 1200, (crop, sizes[crop])


def test_owners_are_printed_and_are_those_on_the_page(twice: Twice) -> None:
    owners = dict(re.findall(r"^(authority|writer) \([a-z ]+\): (\S+)$", twice.printed, flags=re.MULTILINE))
    assert re.fullmatch(r"AUTH-\d{5}", owners["authority"]) and re.fullmatch(r"W-\d{5}", owners["writer"])
    readme = (twice.b / "README.txt").read_text()
    assert owners["authority"] in readme and owners["writer"] in readme
    for name in IMAGES:
        assert name in readme

    samples = twice.samples
    assert (samples.authority, samples.writer) == (owners["authority"], owners["writer"])
    config = PageConfig(
        dpi_range=(DPI, DPI), forgery_rate=0.0, hard_rate=0.0, scan_kinds=("clean",),
        kinds=("import_declaration",), languages=("en",),
    )  # fmt: skip
    page = render_page(0, samples.page_index, config)
    assert {m.owner_id for m in page.marks if m.class_id == 0} == {samples.authority}
    assert {m.owner_id for m in page.marks if m.class_id == 1} == {samples.writer}
    scan = generate_scan(0, samples.scan_index, size=640, greyscale=False)
    assert any(o.class_name == "handgun" and o.concealment == "easy" for o in scan.objects)


def test_a_negative_seed_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "samples", "--out", str(tmp_path / "x"), "--seed", "-1"]) == 2
    assert "seed must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
