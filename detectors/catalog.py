"""Which detector class serves each shipped detection model, by model name.

The service (:mod:`service.models`), ``customs-vision inspect`` and ``customs-vision evaluate`` all
build a model's detector from here, so an evaluation measures exactly what the service runs (for
the X-ray model: :class:`~detectors.xray.ThreatDetector`, which also turns negative displays
around before the model sees them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from detectors.base import YoloDetector
from detectors.document import MarkDetector
from detectors.xray import ThreatDetector

__all__ = ["DETECTORS", "detector_class"]

#: Model name (``models/<name>.json``) -> the detector class that serves it.
DETECTORS: Mapping[str, type[YoloDetector]] = MappingProxyType({"xray": ThreatDetector, "document": MarkDetector})


def detector_class(model_name: str) -> type[YoloDetector]:
    """The detector class of a model name; the plain :class:`YoloDetector` for any other model."""
    return DETECTORS.get(model_name, YoloDetector)
