"""Seeded synthetic specimens for the similarity tests (no dependency on detectors.synth or ../shared).

An owner is a random "scribble": a few strokes through random control points. A genuine specimen
redraws the owner's strokes with small jitter, a slight rotation and scale; a forgery redraws them
with large jitter (the overall look kept, the details wrong).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.imageio import encode_png


def owner_points(owner: int, n_strokes: int = 3, n_points: int = 6) -> np.ndarray:
    """``(n_strokes, n_points, 2)`` control points in ``[0.1, 0.9]^2`` for one owner."""
    rng = np.random.default_rng(10_000 + owner)
    return rng.uniform(0.1, 0.9, size=(n_strokes, n_points, 2))


def render(
    points: np.ndarray, rng: np.random.Generator, *, jitter: float, size: tuple[int, int] = (60, 120)
) -> np.ndarray:
    """Draw strokes on white paper: ``(H, W, 3)`` uint8 RGB."""
    h, w = size
    angle = rng.uniform(-0.08, 0.08)
    scale = rng.uniform(0.9, 1.1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    p = (points - 0.5) @ rot.T * scale + 0.5 + rng.normal(0.0, jitter, size=points.shape)
    img = np.full((h, w, 3), 255, np.uint8)
    ink = tuple(int(v) for v in rng.integers(0, 60, size=3))
    for stroke in p:
        pts = np.stack([stroke[:, 0] * (w - 1), stroke[:, 1] * (h - 1)], axis=1).round().astype(np.int32)
        cv2.polylines(img, [pts], isClosed=False, color=ink, thickness=2, lineType=cv2.LINE_AA)
    return img


def make_specimen(owner: int, index: int, *, genuine: bool = True) -> np.ndarray:
    rng = np.random.default_rng([owner, index, int(genuine)])
    return render(owner_points(owner), rng, jitter=0.012 if genuine else 0.09)


def write_specimen_tree(root: Path, owners: range, genuine: int, forged: int) -> Path:
    """``root/<owner>/genuine/NN.png`` and ``root/<owner>/forged/NN.png``."""
    for o in owners:
        for sub, n, is_genuine in (("genuine", genuine, True), ("forged", forged, False)):
            folder = root / f"owner{o:03d}" / sub
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{i:02d}.png").write_bytes(encode_png(make_specimen(o, i, genuine=is_genuine)))
    return root


@pytest.fixture(scope="session")
def trained_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny similarity model trained briefly on scribbles; returns its card path (session-wide)."""
    from similarity.training import TrainConfig, train

    base = tmp_path_factory.mktemp("similarity-train")
    data = write_specimen_tree(base / "data", range(24), genuine=4, forged=2)
    config = TrainConfig(
        kinds=("signature",),
        version="test-1",
        input_size=(32, 64),
        embedding_dim=16,
        width=8,
        steps=60,
        p=8,
        forgeries=4,
        lr=3e-3,
        warmup_steps=5,
        heldout=0.3,
        use_real_signatures=False,
        synth_owners=0,
        extra_folders=(("signature", data),),
        band=2.0,
    )
    result = train(config, base / "models", command="pytest", runs_dir=base / "runs", log=lambda _m: None)
    return result.card_path
