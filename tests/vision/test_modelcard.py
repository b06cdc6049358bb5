"""Model cards: saved atomically, so a reader never sees half a card."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vision.modelcard import ModelCard


def _card() -> ModelCard:
    card = ModelCard.load(Path(__file__).resolve().parents[2] / "models" / "xray.json")
    card.metrics = {"real_test": {"map50": 0.5}}
    return card


def test_save_round_trips_keeps_the_files_mode_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "xray.json"
    path.write_text("{}\n", encoding="utf-8")
    path.chmod(0o640)
    card = _card()
    card.save(path)
    assert ModelCard.load(path).metrics == {"real_test": {"map50": 0.5}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xray.json"]
    fresh = tmp_path / "new.json"
    card.save(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644


def test_a_failed_save_leaves_the_old_card_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "xray.json"
    card = _card()
    card.save(path)
    before = path.read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    card.metrics["real_test"] = {"map50": 0.9}
    with pytest.raises(OSError, match="disk full"):
        card.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xray.json"]
