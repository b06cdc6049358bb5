"""``calibrate stamps``, and the aligned path of ``compare`` and ``evaluate similarity``, end to end
on a few rendered authorities and a copy of the shipped similarity model."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.cli import build_parser, main
from similarity.aligned import SECTION, AlignedStampScorer
from vision.imageio import encode_png, read_image_file
from vision.modelcard import ModelCard, ModelCardError, load_verified

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "models" / "similarity.json"

if not CARD.is_file() or not (REPO / "models" / "similarity.onnx").is_file():
    pytest.skip("needs the shipped models/similarity.json and .onnx", allow_module_level=True)


def _without_aligned(card: dict) -> dict:
    """The card as it was before any ``calibrate stamps`` (the shipped one has the section)."""
    card = json.loads(json.dumps(card))
    card["metrics"].get("scoring", {}).pop(SECTION, None)
    card["metrics"].pop("heldout_aligned", None)
    return card


def _copy_card(folder: Path) -> Path:
    """A copy of the shipped similarity model whose card has no aligned stamp section."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "similarity.json").write_text(json.dumps(_without_aligned(json.loads(CARD.read_text())), indent=2))
    shutil.copy(CARD.with_suffix(".onnx"), folder / "similarity.onnx")
    return folder / "similarity.json"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """``calibrate stamps --render 4x3+2 --no-heldout-only --write-card`` into a card copy:
    ``(data folder, card, printed report)``."""
    from detectors.synth.fonts import FontNotFoundError

    base = tmp_path_factory.mktemp("aligned-cli")
    card = _copy_card(base / "models")
    argv = ["calibrate", "stamps", "--data", str(base / "stamps"), "--model", str(card), "--refs", "2"]
    argv += ["--no-heldout-only", "--render", "4x3+2", "--seed", "3", "--write-card"]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
    except FontNotFoundError as e:  # pragma: no cover - depends on the machine's fonts
        pytest.skip(f"stamp rendering needs fonts: {e}")
    assert rc == 0
    return base / "stamps", card, json.loads(buf.getvalue())


def test_calibrate_writes_the_section_and_the_report_into_the_card(calibrated):
    data, card_path, report = calibrated
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == [f"SIM-AUTH-{i:05d}" for i in range(4)]
    # 4 owners x (1 genuine query + 2 forgeries) claimed for themselves, + 3 other owners' queries each.
    assert report["pairs"] == {"genuine": 4, "skilled": 8, "random": 12} and report["owners"] == 4
    assert report["timing"]["comparisons"] == 2 * 24
    for method in ("aligned", "cnn"):
        m = report[method]["metrics"]
        assert {"skilled", "random", "skilled_by_kind"} <= set(m)
        assert m["skilled"]["n_genuine"] == 4 and m["skilled"]["n_impostor"] == 8
        assert sum(v["n_impostor"] for v in m["skilled_by_kind"].values()) == 8
    assert report["aligned"]["percent_distributions"]["random"]["n"] == 12

    card, _ = load_verified(card_path)  # the ONNX file still matches: only the JSON changed
    scorer = AlignedStampScorer.from_metrics(card.metrics)
    assert scorer is not None and scorer.threshold == report["threshold"] == report["aligned"]["decision"]["threshold"]
    assert card.metrics["scoring"][SECTION]["calibration_impostors"] == ["skilled", "random"]
    # Fitted on the 4 genuine pairs against skilled (8) and random (12) pooled at equal weight: 2 x 12.
    calibration = card.metrics["scoring"][SECTION]["calibration"]
    assert (calibration["n_genuine"], calibration["n_impostor"]) == (4, 24)
    assert card.metrics["heldout_aligned"]["stamp"] == report
    original = _without_aligned(json.loads(CARD.read_text()))
    written = json.loads(card_path.read_text())
    del written["metrics"]["scoring"][SECTION], written["metrics"]["heldout_aligned"]
    assert written == original  # the rest of the card is intact


def test_the_recorded_command_spells_out_every_option_and_parses_back(calibrated):
    data, card_path, report = calibrated
    command = report["command"]
    assert "--no-heldout-only" in command and "--render 4x3+2 --render-seed 0" in command
    argv = shlex.split(command)
    assert argv[0] == "customs-vision"
    args = build_parser().parse_args(argv[1:])
    assert (args.data, args.model, args.refs, args.heldout_only, args.seed) == (data, card_path, 2, False, 3)
    assert args.band == 5.0 and args.far is None and args.write_card


def test_heldout_only_refuses_owners_the_network_trained_on(calibrated, capsys):
    data, card_path, _ = calibrated
    # SIM-AUTH-00000..03 are all training authorities of the shipped model (split hash >= 0.2).
    rc = main(["calibrate", "stamps", "--data", str(data), "--model", str(card_path)])
    assert rc == 2 and "--no-heldout-only" in capsys.readouterr().err


def test_render_refuses_a_folder_that_is_not_a_render(tmp_path, capsys):
    archive = tmp_path / "archive"
    (archive / "AUTH-1" / "genuine").mkdir(parents=True)
    card = _copy_card(tmp_path / "models")
    rc = main(["calibrate", "stamps", "--data", str(archive), "--model", str(card), "--render", "2x3+1"])
    assert rc == 2 and "refusing" in capsys.readouterr().err
    assert main(["calibrate", "stamps", "--data", str(archive), "--model", str(card), "--render", "2x3"]) == 2


def test_write_card_refuses_a_card_that_now_describes_another_model(tmp_path):
    from service.commands.calibrate import _write_card

    card_path = _copy_card(tmp_path)
    before = card_path.read_text()
    with pytest.raises(ModelCardError, match="nothing written"):
        _write_card(card_path, {}, {"model_sha256": "0" * 64}, SECTION)
    assert card_path.read_text() == before


def test_compare_a_stamp_uses_the_aligned_verifier(calibrated, tmp_path, capsys):
    data, card_path, _ = calibrated
    owner = data / "SIM-AUTH-00001"
    query, specimen = owner / "genuine" / "02.png", owner / "genuine" / "00.png"
    rc = main(["compare", str(query), "--kind", "stamp", "--specimen", str(specimen), "--model", str(card_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    scorer = AlignedStampScorer.from_metrics(ModelCard.load(card_path).metrics)
    assert scorer is not None
    expected = scorer.score(read_image_file(query), [read_image_file(specimen)])
    assert out["method"] == "aligned"
    assert (out["similarity"], out["verdict"], out["threshold"]) == (
        expected.percent,
        expected.verdict,
        scorer.threshold,
    )
    assert out["stamp_match"]["score"] == round(expected.features.similarity, 6)

    # The same pair with a card without the aligned section: the embedding scores it.
    plain = _copy_card(tmp_path / "plain")
    rc = main(["compare", str(query), "--kind", "stamp", "--specimen", str(specimen), "--model", str(plain)])
    assert rc == 0 and json.loads(capsys.readouterr().out)["method"] == "embedding"


def test_compare_a_blank_stamp_crop_is_a_clear_error(calibrated, tmp_path, capsys):
    data, card_path, _ = calibrated
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode_png(np.full((140, 180, 3), 246, np.uint8)))
    specimen = data / "SIM-AUTH-00000" / "genuine" / "00.png"
    rc = main(["compare", str(blank), "--kind", "stamp", "--specimen", str(specimen), "--model", str(card_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: no stamp ink found in") and str(blank) in err
    rc = main(["compare", str(specimen), "--kind", "stamp", "--specimen", str(blank), "--model", str(card_path)])
    assert rc == 2 and "specimen" in capsys.readouterr().err


def test_compare_a_stamp_with_a_registered_owner(calibrated, tmp_path, capsys, monkeypatch):
    from service.settings import Settings
    from similarity.embedder import Embedder
    from similarity.registry import SpecimenRegistry

    data, card_path, _ = calibrated
    monkeypatch.setenv("CV_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CV_DATABASE_URL", raising=False)
    (tmp_path / "var").mkdir()
    embedder, _ = Embedder.from_card(card_path, threads=1)
    reg = SpecimenRegistry.from_url(Settings().sqlalchemy_url, model_version=embedder.version)
    for name in ("00.png", "01.png"):
        img = read_image_file(data / "SIM-AUTH-00002" / "genuine" / name)
        reg.add(owner="AUTH-X", kind="stamp", image=img, embedding=embedder.embed_one(img), label=name)
    reg.close()
    query = data / "SIM-AUTH-00002" / "genuine" / "02.png"

    rc = main(["compare", str(query), "--kind", "stamp", "--owner", "AUTH-X", "--model", str(card_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "aligned" and out["owner"] == "AUTH-X" and len(out["specimens"]) == 2
    assert out["similarity"] == max(s["similarity"] for s in out["specimens"])
    rc = main(["compare", str(query), "--kind", "stamp", "--owner", "NOBODY", "--model", str(card_path)])
    assert rc == 2 and "NOBODY" in capsys.readouterr().err


def test_evaluate_similarity_adds_the_aligned_block_for_stamps(calibrated, tmp_path, capsys):
    data, card_path, _ = calibrated
    argv = ["evaluate", "similarity", "--kind", "stamp", "--data", str(data), "--refs", "2", "--threads", "1"]
    assert main([*argv, "--model", str(card_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "metrics" in out and out["service_uses_for_stamps"].startswith("aligned")
    block = out["aligned"]
    assert block["method"] == "aligned" and block["pairs"] == {"genuine": 4, "skilled": 8, "random": 12}
    assert {"skilled", "random"} <= set(block["metrics"])
    assert {"skilled", "random"} <= set(block["cnn_same_pairs"]["metrics"])
    assert block["percent_distributions"]["genuine"]["n"] == 4
    scorer = AlignedStampScorer.from_metrics(ModelCard.load(card_path).metrics)
    assert scorer is not None and block["decision"]["threshold"] == scorer.threshold

    plain = _copy_card(tmp_path / "plain")
    assert main([*argv, "--model", str(plain)]) == 0  # a card without the aligned section: no block
    out = json.loads(capsys.readouterr().out)
    assert "aligned" not in out and "service_uses_for_stamps" not in out and "metrics" in out
