"""What a direct comparison of two crops provides, whatever the kind of mark.

The Siamese embedding (:mod:`similarity.embedder`) finds *which* owner a mark looks like; whether
it is that owner's genuine mark is decided by comparing the crop directly with the owner's
registered specimens:

* stamps: :class:`similarity.stamp_match.StampMatcher` (the impression aligned onto the specimen
  at scan resolution, ink the genuine die does not have);
* signatures: :class:`similarity.signature_match.SignatureMatcher` (gradient-orientation shape
  descriptors of the two signatures compared).

Both follow :class:`PairMatcher`; :class:`similarity.verifier.PairVerifier` puts one together
with its calibration and decision policy from the model card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["BlankCropError", "Finding", "PairFeatures", "PairMatchError", "PairMatcher"]


class PairMatchError(ValueError):
    """A crop cannot be compared: wrong array type or shape, too small, or no ink."""


class BlankCropError(PairMatchError):
    """The crop holds no visible ink (an empty detector box, a blank region of paper)."""


@dataclass(frozen=True)
class Finding:
    """Something a mark shows by itself, whatever it is compared with, that an examiner should know.

    Attributes:
        code: short machine-readable name (e.g. ``"copy_like"``).
        detail: what it means, in words a clerk understands.
    """

    code: str
    detail: str


class PairFeatures(Protocol):
    """The outcome of one comparison: the features measured and their combined score."""

    @property
    def similarity(self) -> float:
        """Combined score in ``[0, 1]`` (a logistic output; higher = more alike)."""
        ...


class PairMatcher(Protocol):
    """A direct comparison of a questioned crop with one registered specimen."""

    @property
    def weights(self) -> Mapping[str, float]:
        """Logistic weights of the features plus ``"intercept"`` (stored in the model card)."""
        ...

    def prepare(self, crop: npt.NDArray[np.uint8]) -> Any:
        """Preprocess a crop once (usable as query or specimen).

        Raises:
            PairMatchError: bad array; BlankCropError: no ink.
        """
        ...

    def compare(self, query: Any, specimen: Any) -> PairFeatures:
        """Compare a prepared query with a prepared specimen."""
        ...

    def findings(self, query: Any) -> list[Finding]:
        """What the prepared questioned mark shows by itself (possibly nothing)."""
        ...

    def comparison_findings(self, features: Any) -> list[Finding]:
        """What one comparison's own conditions say about how far to trust it (possibly nothing),
        from the features :meth:`compare` returned (e.g. scans of very different resolution)."""
        ...
