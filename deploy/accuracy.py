"""The accuracy gate: an engine is written only if held-out accuracy stays within a margin.

Both numbers are measured now, on the same held-out images, through the same serving code: the
baseline with the card's float32 ONNX file on ONNX Runtime, the candidate with the new engine (or,
on a CPU, the precision-converted graph on ONNX Runtime). Comparing with a number stored in the
card instead would mix up a precision loss with a different image set or a changed pipeline.

Metrics: mAP50 for detectors (higher is better; COCO-style, :mod:`vision.metrics`), the equal
error rate for the similarity embedder (lower is better; :func:`similarity.scoring.equal_error_rate`
over genuine vs all impostor pairs of held-out specimens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Metric = Literal["map50", "eer"]
#: Whether a larger value of the metric is better.
HIGHER_IS_BETTER: dict[str, bool] = {"map50": True, "eer": False}
#: Default margins: the largest accepted loss, in the metric's own units (absolute, not relative).
DEFAULT_MARGIN: dict[str, float] = {"map50": 0.01, "eer": 0.01}


class AccuracyGateError(RuntimeError):
    """The candidate lost more accuracy than the margin allows; nothing was written."""


@dataclass(frozen=True)
class GateResult:
    """One accuracy comparison.

    Attributes:
        metric: ``"map50"`` or ``"eer"``.
        baseline: the float32 model's value.
        candidate: the converted model's value.
        loss: how much worse the candidate is, in the metric's units (negative = better).
        margin: the largest accepted loss.
        passed: ``loss <= margin``.
    """

    metric: str
    baseline: float
    candidate: float
    loss: float
    margin: float
    passed: bool

    @property
    def message(self) -> str:
        verdict = "within" if self.passed else "exceeds"
        return (
            f"{self.metric}: baseline {self.baseline:.4f}, candidate {self.candidate:.4f}, loss {self.loss:+.4f} "
            f"{verdict} the margin {self.margin:.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "loss": self.loss,
            "margin": self.margin,
            "passed": self.passed,
        }


def accuracy_gate(metric: Metric, *, baseline: float, candidate: float, margin: float | None = None) -> GateResult:
    """Compare a candidate's held-out value with the baseline's.

    Args:
        metric: ``"map50"`` (higher is better) or ``"eer"`` (lower is better).
        baseline: value of the float32 model.
        candidate: value of the converted model.
        margin: largest accepted loss, >= 0; default :data:`DEFAULT_MARGIN`.

    Returns:
        The comparison; ``passed`` is False when the loss exceeds the margin.

    Raises:
        ValueError: an unknown metric, a negative margin, or a value that is not a finite number
            (a NaN mAP means the held-out set has no ground truth: nothing was measured).
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(HIGHER_IS_BETTER)}")
    margin = DEFAULT_MARGIN[metric] if margin is None else float(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    for what, value in (("baseline", baseline), ("candidate", candidate)):
        if not np.isfinite(value):
            raise ValueError(f"{what} {metric} is {value}: the held-out set measured nothing")
    loss = baseline - candidate if HIGHER_IS_BETTER[metric] else candidate - baseline
    # A loss equal to the margin passes; a tiny epsilon keeps float rounding from failing it.
    return GateResult(metric, float(baseline), float(candidate), float(loss), margin, bool(loss <= margin + 1e-12))


def enforce(result: GateResult) -> GateResult:
    """Return ``result`` if it passed, else raise :class:`AccuracyGateError` with its message."""
    if not result.passed:
        raise AccuracyGateError(f"refusing to write the engine: {result.message}")
    return result


def detector_map50(
    card_path: str | Path,
    heldout: str | Path,
    *,
    backend_name: str,
    backend_kwargs: Mapping[str, Any],
    split: str = "val",
    limit: int | None = None,
) -> float:
    """mAP50 of the card's detector on a labelled held-out split, through a given backend.

    Args:
        card_path: the detector's model card (its ONNX file is sha256-verified).
        heldout: a YOLO-format data set folder (``images/<split>``, ``labels/<split>``).
        backend_name: ``"onnxruntime"`` or ``"tensorrt"``.
        backend_kwargs: e.g. ``{"path": converted_onnx}`` or ``{"engine_path": engine}``.
        split: the split to measure.
        limit: only the first ``limit`` images.
    """
    from detectors.evaluation import evaluate_detector

    block = evaluate_detector(
        card_path, heldout, split=split, backend_name=backend_name, backend_kwargs=dict(backend_kwargs), limit=limit
    )
    value = block.get("map50")
    return float("nan") if value is None else float(value)


def embedder_eer(
    card_path: str | Path,
    heldout: str | Path,
    *,
    backend_name: str,
    backend_kwargs: Mapping[str, Any],
    kind: str = "stamp",
) -> float:
    """Equal error rate of the card's embedder on held-out specimens, through a given backend.

    Args:
        card_path: the embedder's model card (its ONNX file is sha256-verified).
        heldout: a specimen folder ``<owner>/genuine/*`` and ``<owner>/forged/*``, owners never
            trained on.
        backend_name: ``"onnxruntime"`` or ``"tensorrt"``.
        backend_kwargs: e.g. ``{"path": converted_onnx}`` or ``{"engine_path": engine}``.
        kind: ``"stamp"`` or ``"signature"`` (recorded on the items only).

    Returns:
        EER in ``[0, 1]`` over genuine pairs vs every impostor pair (skilled, hard, random).
    """
    from similarity.data import load_specimen_folder
    from similarity.embedder import Embedder
    from similarity.evaluation import IMPOSTOR_CATEGORIES, pair_scores
    from similarity.scoring import equal_error_rate
    from vision.modelcard import load_verified
    from vision.runtime.registry import create_backend

    card, onnx_path = load_verified(card_path)
    kwargs = dict(backend_kwargs)
    if backend_name == "onnxruntime":
        kwargs.setdefault("path", onnx_path)
    items = load_specimen_folder(Path(heldout), kind)
    embedder = Embedder(backend=create_backend(backend_name, **kwargs), spec=card.spec)
    try:
        embeddings = embedder.embed([item.image() for item in items])
    finally:
        embedder.backend.close()
    scores = pair_scores(items, embeddings)
    impostors = np.concatenate([scores[c] for c in IMPOSTOR_CATEGORIES])
    eer, _ = equal_error_rate(scores["genuine"], impostors)
    return eer
