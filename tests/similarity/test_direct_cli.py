"""``calibrate stamps|signatures``, and the direct path of ``compare`` and ``evaluate similarity``,
end to end on a few rendered authorities and writers and a copy of the shipped similarity model."""

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
from similarity.verifier import SECTIONS, PairVerifier, verifiers_from_metrics
from vision.imageio import encode_png, read_image_file
from vision.modelcard import ModelCard, ModelCardError, load_verified

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "models" / "similarity.json"

if not CARD.is_file() or not (REPO / "models" / "similarity.onnx").is_file():
    pytest.skip("needs the shipped models/similarity.json and .onnx", allow_module_level=True)

STAMP, SIGNATURE = SECTIONS["stamp"], SECTIONS["signature"]


def _without_direct(card: dict) -> dict:
    """The card as it was before any ``calibrate`` (the shipped one may have the sections)."""
    card = json.loads(json.dumps(card))
    for section in SECTIONS.values():
        card["metrics"].get("scoring", {}).pop(section, None)
    card["metrics"].pop("heldout_aligned", None)
    card["metrics"].pop("heldout_direct", None)
    return card


def _copy_card(folder: Path, card: dict | None = None) -> Path:
    """A copy of the shipped similarity model; its card is ``card``, by default the shipped one
    without any direct verifier section."""
    folder.mkdir(parents=True, exist_ok=True)
    card = _without_direct(json.loads(CARD.read_text())) if card is None else card
    (folder / "similarity.json").write_text(json.dumps(card, indent=2))
    shutil.copy(CARD.with_suffix(".onnx"), folder / "similarity.onnx")
    return folder / "similarity.json"


def _run(argv: list[str]) -> dict:
    """``main(argv)`` that must succeed; its stdout as JSON."""
    from detectors.synth.fonts import FontNotFoundError

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            rc = main(argv)
    except FontNotFoundError as e:  # pragma: no cover - depends on the machine's fonts
        pytest.skip(f"rendering needs fonts: {e}")
    assert rc == 0
    return json.loads(buf.getvalue())


def _blank(path: Path, size: tuple[int, int] = (140, 180)) -> Path:
    path.write_bytes(encode_png(np.full((*size, 3), 246, np.uint8)))
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """``calibrate stamps --render 4x3+2 --no-heldout-only --write-card`` into a card copy:
    ``(data folder, card, printed report)``."""
    base = tmp_path_factory.mktemp("direct-cli-stamps")
    card = _copy_card(base / "models")
    argv = ["calibrate", "stamps", "--data", str(base / "stamps"), "--model", str(card), "--refs", "2"]
    argv += ["--no-heldout-only", "--render", "4x3+2", "--seed", "3", "--write-card"]
    return base / "stamps", card, _run(argv)


@pytest.fixture(scope="module")
def calibrated_signatures(
    calibrated: tuple[Path, Path, dict], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict]:
    """``calibrate signatures --render 4x3+2 --no-heldout-only --write-card`` into a copy of the
    stamp-calibrated card (so it holds both verifiers): ``(data folder, card, printed report)``."""
    base = tmp_path_factory.mktemp("direct-cli-signatures")
    card = _copy_card(base / "models", json.loads(calibrated[1].read_text()))
    argv = ["calibrate", "signatures", "--data", str(base / "signatures"), "--model", str(card)]
    argv += ["--no-heldout-only", "--render", "4x3+2", "--seed", "3", "--write-card"]
    return base / "signatures", card, _run(argv)


def _verifier(card_path: Path, kind: str) -> PairVerifier:
    verifier = verifiers_from_metrics(ModelCard.load(card_path).metrics).get(kind)
    assert verifier is not None
    return verifier


# ------------------------------------------------------------------------------------ calibrate


def test_calibrate_writes_the_section_and_the_report_into_the_card(calibrated):
    data, card_path, report = calibrated
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == [f"SIM-AUTH-{i:05d}" for i in range(4)]
    # 4 owners x (1 genuine query + 2 forgeries) claimed for themselves, + 3 other owners' queries each;
    # a folder's owners each form their own group, so there are no hard pairs.
    assert report["pairs"] == {"genuine": 4, "skilled": 8, "hard": 0, "random": 12} and report["owners"] == 4
    assert report["timing"]["comparisons"] == 2 * 24
    assert report["direct"]["method"] == "aligned"
    for method in ("direct", "cnn"):
        m = report[method]["metrics"]
        assert {"skilled", "random", "skilled_by_kind"} <= set(m) and "hard" not in m
        assert m["skilled"]["n_genuine"] == 4 and m["skilled"]["n_impostor"] == 8
        assert sum(v["n_impostor"] for v in m["skilled_by_kind"].values()) == 8
    assert report["direct"]["percent_distributions"]["random"]["n"] == 12

    card, _ = load_verified(card_path)  # the ONNX file still matches: only the JSON changed
    verifiers = verifiers_from_metrics(card.metrics)
    assert set(verifiers) == {"stamp"}
    scorer = verifiers["stamp"]
    assert scorer.method == "aligned"
    assert scorer.threshold == report["threshold"] == report["direct"]["decision"]["threshold"]
    assert card.metrics["scoring"][STAMP]["calibration_impostors"] == ["skilled", "random"]
    # Fitted on the 4 genuine pairs against skilled (8) and random (12) pooled at equal weight: 2 x 12.
    calibration = card.metrics["scoring"][STAMP]["calibration"]
    assert (calibration["n_genuine"], calibration["n_impostor"]) == (4, 24)
    assert card.metrics["heldout_direct"]["stamp"] == report
    assert "heldout_aligned" not in card.metrics
    original = _without_direct(json.loads(CARD.read_text()))
    written = json.loads(card_path.read_text())
    del written["metrics"]["scoring"][STAMP], written["metrics"]["heldout_direct"]
    assert written == original  # the rest of the card is intact


def test_calibrate_signatures_writes_its_section_beside_the_stamps(calibrated, calibrated_signatures):
    _, stamp_card, stamp_report = calibrated
    data, card_path, report = calibrated_signatures
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == [f"SIM-W-{i:05d}" for i in range(4)]
    # refs 1: 4 owners x (2 genuine queries + 2 forgeries), + 3 other owners x 2 queries each.
    assert report["pairs"] == {"genuine": 8, "skilled": 8, "hard": 0, "random": 24} and report["owners"] == 4
    assert report["blank_crops"] == 0 and report["timing"]["comparisons"] == 40
    assert report["direct"]["method"] == "shape" and "signature_match" in report["direct"]["score"]
    assert {"skilled", "random"} <= set(report["direct"]["metrics"]) <= {"skilled", "skilled_by_kind", "random"}
    assert report["direct"]["percent_distributions"]["genuine"]["n"] == 8

    card, _ = load_verified(card_path)
    verifiers = verifiers_from_metrics(card.metrics)
    assert set(verifiers) == {"stamp", "signature"}  # the card parses, with both verifiers
    signature = verifiers["signature"]
    assert signature.method == "shape" and signature.section == SIGNATURE
    assert signature.threshold == report["threshold"] == report["direct"]["decision"]["threshold"]
    section = card.metrics["scoring"][SIGNATURE]
    assert section["calibration_impostors"] == ["skilled", "random"] and "use_scale" not in section
    assert (section["calibration"]["n_genuine"], section["calibration"]["n_impostor"]) == (8, 48)
    assert card.metrics["heldout_direct"]["signature"] == report
    # The stamp verifier and its report are left as they were.
    before = json.loads(stamp_card.read_text())["metrics"]
    assert card.metrics["scoring"][STAMP] == before["scoring"][STAMP]
    assert card.metrics["heldout_direct"]["stamp"] == before["heldout_direct"]["stamp"]
    assert before["heldout_direct"]["stamp"] == stamp_report


def test_the_recorded_command_spells_out_every_option_and_parses_back(calibrated, calibrated_signatures):
    for (data, card_path, report), name in ((calibrated, "stamps"), (calibrated_signatures, "signatures")):
        command = report["command"]
        assert "--no-heldout-only" in command and "--render 4x3+2 --render-seed 0" in command
        argv = shlex.split(command)
        assert argv[:3] == ["customs-vision", "calibrate", name]
        args = build_parser().parse_args(argv[1:])
        refs = 2 if name == "stamps" else 1
        assert (args.data, args.model, args.refs, args.heldout_only, args.seed) == (data, card_path, refs, False, 3)
        assert args.band == 5.0 and args.far is None and args.write_card
    assert build_parser().parse_args(shlex.split(calibrated_signatures[2]["command"])[1:]).real is None


def test_heldout_only_refuses_owners_the_network_trained_on(calibrated, capsys):
    data, card_path, _ = calibrated
    # SIM-AUTH-00000..03 are all training authorities of the shipped model (split hash >= 0.2).
    rc = main(["calibrate", "stamps", "--data", str(data), "--model", str(card_path)])
    assert rc == 2 and "--no-heldout-only" in capsys.readouterr().err


def test_render_refuses_a_folder_that_is_not_a_render(tmp_path, capsys):
    archive = tmp_path / "archive"
    (archive / "AUTH-1" / "genuine").mkdir(parents=True)
    card = _copy_card(tmp_path / "models")
    for what in ("stamps", "signatures"):
        rc = main(["calibrate", what, "--data", str(archive), "--model", str(card), "--render", "2x3+1"])
        assert rc == 2 and "refusing" in capsys.readouterr().err
    assert main(["calibrate", "stamps", "--data", str(archive), "--model", str(card), "--render", "2x3"]) == 2


def test_write_card_refuses_a_card_that_now_describes_another_model(tmp_path):
    from service.commands.calibrate import _write_card

    card_path = _copy_card(tmp_path)
    before = card_path.read_text()
    verifier = PairVerifier.fit("signature", [0.9, 0.8, 0.85, 0.7], [0.1, 0.2, 0.3, 0.75])
    with pytest.raises(ModelCardError, match="nothing written"):
        _write_card(card_path, verifier, {"model_sha256": "0" * 64}, ["random"])
    assert card_path.read_text() == before


# -------------------------------------------------------------------------------------- compare


def test_compare_a_stamp_uses_the_aligned_verifier(calibrated, tmp_path, capsys):
    data, card_path, _ = calibrated
    owner = data / "SIM-AUTH-00001"
    query, specimen = owner / "genuine" / "02.png", owner / "genuine" / "00.png"
    rc = main(["compare", str(query), "--kind", "stamp", "--specimen", str(specimen), "--model", str(card_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    scorer = _verifier(card_path, "stamp")
    expected = scorer.score(read_image_file(query), [read_image_file(specimen)])
    assert out["method"] == "aligned"
    assert (out["similarity"], out["verdict"], out["threshold"]) == (
        expected.percent,
        expected.verdict,
        scorer.threshold,
    )
    assert out["stamp_match"]["score"] == round(expected.features.similarity, 6)
    assert set(out["stamp_match"]) == {"score", "angle_deg", "scale"} and "signature_match" not in out
    assert out["findings"] == [{"code": f.code, "detail": f.detail} for f in expected.findings]

    # The same pair with a card without the aligned section: the embedding scores it.
    plain = _copy_card(tmp_path / "plain")
    rc = main(["compare", str(query), "--kind", "stamp", "--specimen", str(specimen), "--model", str(plain)])
    assert rc == 0 and json.loads(capsys.readouterr().out)["method"] == "embedding"


def test_compare_a_signature_uses_the_shape_verifier(calibrated, calibrated_signatures, capsys):
    data, card_path, _ = calibrated_signatures
    owner = data / "SIM-W-00001"
    query, specimen = owner / "genuine" / "02.png", owner / "genuine" / "00.png"
    argv = ["compare", str(query), "--kind", "signature", "--specimen", str(specimen)]
    assert main([*argv, "--model", str(card_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    verifier = _verifier(card_path, "signature")
    expected = verifier.score(read_image_file(query), [read_image_file(specimen)])
    assert out["method"] == "shape" and out["kind"] == "signature" and out["specimen"] == str(specimen)
    assert (out["similarity"], out["verdict"], out["threshold"], out["band"]) == (
        expected.percent,
        expected.verdict,
        verifier.threshold,
        verifier.band,
    )
    assert out["signature_match"] == {"score": round(expected.features.similarity, 6)} and "stamp_match" not in out
    assert out["findings"] == []

    # The stamp-only card has no signature verifier: the embedding scores the pair.
    assert main([*argv, "--model", str(calibrated[1])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "embedding" and "signature_match" not in out


def test_compare_a_blank_crop_is_a_clear_error(calibrated, calibrated_signatures, tmp_path, capsys):
    for (data, _, _), kind, owner, ink in (
        (calibrated, "stamp", "SIM-AUTH-00000", "stamp ink"),
        (calibrated_signatures, "signature", "SIM-W-00000", "ink"),
    ):
        card_path = calibrated_signatures[1]  # holds both verifiers
        blank = _blank(tmp_path / f"blank-{kind}.png")
        specimen = data / owner / "genuine" / "00.png"
        rc = main(["compare", str(blank), "--kind", kind, "--specimen", str(specimen), "--model", str(card_path)])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith(f"error: no {ink} found in {blank}"), err
        rc = main(["compare", str(specimen), "--kind", kind, "--specimen", str(blank), "--model", str(card_path)])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith(f"error: no {ink} found in the specimen {blank}"), err


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's specimen registry in an empty data folder of this test."""
    monkeypatch.setenv("CV_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CV_DATABASE_URL", raising=False)
    (tmp_path / "var").mkdir()


def _model_version(card_path: Path) -> str:
    """The embedding model version of the card (what the registry keys its embeddings by)."""
    from similarity.embedder import Embedder

    return Embedder.from_card(card_path, threads=1)[0].version


def _register(card_path: Path, owner: str, kind: str, images: dict[str, np.ndarray]) -> None:
    from service.settings import Settings
    from similarity.embedder import Embedder
    from similarity.registry import SpecimenRegistry

    embedder, _ = Embedder.from_card(card_path, threads=1)
    reg = SpecimenRegistry.from_url(Settings().sqlalchemy_url, model_version=embedder.version)
    try:
        for label, img in images.items():
            reg.add(owner=owner, kind=kind, image=img, embedding=embedder.embed_one(img), label=label)
    finally:
        reg.close()


def test_compare_a_stamp_with_a_registered_owner(calibrated, registry_env, capsys):
    data, card_path, _ = calibrated
    folder = data / "SIM-AUTH-00002" / "genuine"
    _register(card_path, "AUTH-X", "stamp", {n: read_image_file(folder / n) for n in ("00.png", "01.png")})
    query = folder / "02.png"

    rc = main(["compare", str(query), "--kind", "stamp", "--owner", "AUTH-X", "--model", str(card_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "aligned" and out["owner"] == "AUTH-X" and len(out["specimens"]) == 2
    # The owner is scored on both specimens together (owner normalisation), each listed on its own.
    verifier = _verifier(card_path, "stamp")
    assert verifier.owner_normalisation is not None
    specimens = [read_image_file(folder / n) for n in ("00.png", "01.png")]
    expected = verifier.score(read_image_file(query), specimens)
    assert (out["similarity"], out["verdict"]) == (expected.percent, expected.verdict)
    assert sorted(s["similarity"] for s in out["specimens"]) == sorted(expected.specimen_percents)
    alone = [verifier.score(read_image_file(query), [s]).percent for s in specimens]
    assert sorted(alone) == sorted(expected.specimen_percents)
    rc = main(["compare", str(query), "--kind", "stamp", "--owner", "NOBODY", "--model", str(card_path)])
    assert rc == 2 and "NOBODY" in capsys.readouterr().err


def test_compare_a_signature_with_a_registered_owner(calibrated_signatures, tmp_path, registry_env, capsys):
    from service.settings import Settings
    from similarity.registry import SpecimenRegistry

    data, card_path, _ = calibrated_signatures
    folder = data / "SIM-W-00002" / "genuine"
    blank = np.full((80, 200, 3), 246, np.uint8)
    images = {"00.png": read_image_file(folder / "00.png"), "01.png": read_image_file(folder / "01.png")}
    _register(card_path, "WRITER-X", "signature", {**images, "blank": blank})
    # Another kind of the same owner is not compared with a signature.
    _register(card_path, "WRITER-X", "stamp", {"seal": read_image_file(folder / "00.png")})
    query = folder / "02.png"

    argv = ["compare", str(query), "--kind", "signature", "--model", str(card_path)]
    assert main([*argv, "--owner", "WRITER-X"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "shape" and out["owner"] == "WRITER-X"
    assert sorted(s["label"] for s in out["specimens"]) == ["00.png", "01.png"]
    assert out["specimens"][0]["similarity"] == max(s["similarity"] for s in out["specimens"])
    verifier = _verifier(card_path, "signature")
    expected = verifier.score(read_image_file(query), list(images.values()))
    assert (out["similarity"], out["verdict"]) == (expected.percent, expected.verdict)
    assert out["signature_match"]["score"] == round(expected.features.similarity, 6)
    # The blank specimen holds no ink: skipped, as the service skips it.
    reg = SpecimenRegistry.from_url(Settings().sqlalchemy_url, model_version=_model_version(card_path))
    try:
        blank_ids = [i.id for i in reg.specimens(owner="WRITER-X", kind="signature") if i.label == "blank"]
    finally:
        reg.close()
    assert out["skipped_specimens"] == blank_ids and len(blank_ids) == 1

    assert main([*argv, "--owner", "NOBODY"]) == 2
    err = capsys.readouterr().err
    assert "NOBODY" in err and "signature" in err

    _register(card_path, "WRITER-BLANK", "signature", {"blank": blank})
    assert main([*argv, "--owner", "WRITER-BLANK"]) == 2
    err = capsys.readouterr().err
    assert "WRITER-BLANK" in err and "nothing to compare with" in err and "stamp" not in err


# ------------------------------------------------------------------------------------- evaluate


def test_evaluate_similarity_adds_the_direct_block_for_stamps(calibrated, tmp_path, capsys):
    data, card_path, _ = calibrated
    argv = ["evaluate", "similarity", "--kind", "stamp", "--data", str(data), "--refs", "2", "--threads", "1"]
    assert main([*argv, "--model", str(card_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "metrics" in out and out["service_uses_for_stamps"].startswith("aligned")
    block = out["direct"]
    assert block["method"] == "aligned" and block["pairs"] == {"genuine": 4, "skilled": 8, "hard": 0, "random": 12}
    assert {"skilled", "random"} <= set(block["metrics"])
    assert {"skilled", "random"} <= set(block["cnn_same_pairs"]["metrics"])
    assert block["percent_distributions"]["genuine"]["n"] == 4
    assert block["decision"]["threshold"] == _verifier(card_path, "stamp").threshold

    plain = _copy_card(tmp_path / "plain")
    assert main([*argv, "--model", str(plain)]) == 0  # a card without the aligned section: no block
    out = json.loads(capsys.readouterr().out)
    assert "direct" not in out and "service_uses_for_stamps" not in out and "metrics" in out


def test_evaluate_similarity_adds_the_direct_block_for_signatures(calibrated, calibrated_signatures, capsys):
    data, card_path, report = calibrated_signatures
    argv = ["evaluate", "similarity", "--kind", "signature", "--data", str(data), "--threads", "1"]
    assert main([*argv, "--model", str(card_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "signature" and "metrics" in out
    assert out["service_uses_for_signatures"].startswith("shape") and "stamp" not in out["service_uses_for_signatures"]
    block = out["direct"]
    assert block["method"] == "shape" and block["pairs"] == {"genuine": 8, "skilled": 8, "hard": 0, "random": 24}
    assert block["decision"]["threshold"] == _verifier(card_path, "signature").threshold
    assert {"skilled", "random"} <= set(block["cnn_same_pairs"]["metrics"])
    # The same pairs (seed 0 here, 3 in calibrate: the random draws differ, the genuine pairs do not).
    assert block["metrics"]["skilled"] == report["direct"]["metrics"]["skilled"]

    # The stamp-only card has no signature verifier: the embedding alone.
    assert main([*argv, "--model", str(calibrated[1])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "direct" not in out and "service_uses_for_signatures" not in out and "metrics" in out
