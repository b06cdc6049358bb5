"""X-ray threat detection: the classes, their thresholds and the risk rule an officer acts on.

The whole decision policy is the table :data:`RISK_RULES`; :func:`assess_risk` applies it and
:class:`ThreatDetector` reports it for every scan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from detectors.base import YoloDetector
from vision.runtime.base import InferenceBackend
from vision.types import Detections, Modality, ModelSpec, RiskLevel

#: Classes of the X-ray model, in class-id order (the order the synthetic-data generator labels them).
XRAY_CLASSES: tuple[str, ...] = (
    "handgun",
    "knife",
    "scissors_blade",
    "ammunition",
    "drug_package",
    "gold_bar",
    "cash_bundle",
)


@dataclass(frozen=True)
class RiskRule:
    """How detections of one class change a scan's risk level.

    Attributes:
        review: confidence at or above which a detection is shown to the officer and the scan goes to
            *review*. It is also the detector's default reporting threshold for the class.
        alarm: confidence at or above which the scan is an *alarm*; ``None`` means this class alone
            never raises an alarm (the officer decides on review).
        reason: why the class matters, in words for the officer.
    """

    review: float
    alarm: float | None
    reason: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= 1.0:
            raise ValueError(f"review threshold must lie in [0, 1], got {self.review}")
        if self.alarm is not None and not self.review <= self.alarm <= 1.0:
            raise ValueError(f"alarm threshold must lie in [review={self.review}, 1], got {self.alarm}")


#: The risk policy, one row per class. How to read it:
#:
#: * **alarm** — at least one detection reaches its class's ``alarm`` confidence: stop the item and
#:   search it by hand.
#: * **review** — no alarm, but at least one detection reaches its class's ``review`` confidence: an
#:   officer looks at the highlighted boxes and decides.
#: * **clear** — nothing reaches a ``review`` threshold.
#:
#: Prohibited items (firearms, ammunition) get the lowest thresholds because a missed one costs far
#: more than a needless search. Scissors are usually allowed, so they only ever ask for review.
#: These values are starting points: tune them against the held-out precision/recall recorded in the
#: shipped model card before relying on them, and record the change.
RISK_RULES: Mapping[str, RiskRule] = MappingProxyType(
    {
        "handgun": RiskRule(0.25, 0.50, "firearm: prohibited without a permit"),
        "ammunition": RiskRule(0.25, 0.50, "ammunition: prohibited without a permit"),
        "knife": RiskRule(0.30, 0.55, "bladed weapon"),
        "scissors_blade": RiskRule(0.35, None, "scissors: usually allowed, officer checks blade length"),
        "drug_package": RiskRule(0.30, 0.60, "dense organic brick or pouch: possible narcotics"),
        "gold_bar": RiskRule(0.30, 0.60, "gold: must be declared, frequently smuggled"),
        "cash_bundle": RiskRule(0.35, 0.65, "currency: must be declared above the allowance"),
    }
)

_LEVELS: tuple[RiskLevel, ...] = ("clear", "review", "alarm")


def assess_risk(detections: Detections, rules: Mapping[str, RiskRule] = RISK_RULES) -> RiskLevel:
    """Risk level of one scan from its detections, by the rule table (see :data:`RISK_RULES`).

    Args:
        detections: one scan's detections with class names.
        rules: class name -> rule; every detected class must have one.

    Returns:
        ``"alarm"``, ``"review"`` or ``"clear"``; the highest level any single detection reaches.

    Raises:
        ValueError: a detection's class has no rule (a model with classes the policy does not cover).
    """
    level = 0
    for label, conf in zip(detections.labels, detections.confidence, strict=True):
        rule = rules.get(label)
        if rule is None:
            raise ValueError(f"no risk rule for class {label!r}; rules cover {sorted(rules)}")
        # Compare in float32, as the detector's threshold filter does: a confidence reported at
        # exactly a threshold (0.35 is 0.34999999 in float32) must count as reaching it.
        if rule.alarm is not None and conf >= np.float32(rule.alarm):
            return "alarm"
        if conf >= np.float32(rule.review):
            level = 1
    return _LEVELS[level]


class ThreatDetector(YoloDetector):
    """Threat detector for X-ray scans, reporting a risk level with every inspection.

    Args:
        backend, spec, conf_threshold, iou_threshold, max_det, multi_label, head: as for
            :class:`~detectors.base.YoloDetector`.
        class_thresholds: per-class reporting thresholds; ``None`` (the default) uses each class's
            ``review`` threshold from ``risk_rules``, so exactly the detections that matter are shown.
            Pass ``{}`` to apply ``conf_threshold`` to every class.
        risk_rules: the risk policy; defaults to :data:`RISK_RULES`.

    Raises:
        ValueError: the model has a class the risk policy does not cover.
    """

    modality: ClassVar[Modality | None] = "xray"

    def __init__(
        self,
        *,
        backend: InferenceBackend,
        spec: ModelSpec,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        class_thresholds: Mapping[str, float] | None = None,
        max_det: int = 300,
        multi_label: bool = False,
        head: str = "auto",
        risk_rules: Mapping[str, RiskRule] = RISK_RULES,
    ) -> None:
        uncovered = [n for n in spec.class_names if n not in risk_rules]
        if uncovered:
            raise ValueError(
                f"X-ray model {spec.name!r} has classes {uncovered} with no risk rule; "
                f"the policy covers {sorted(risk_rules)}"
            )
        if class_thresholds is None:
            class_thresholds = {n: risk_rules[n].review for n in spec.class_names}
        self.risk_rules = risk_rules
        super().__init__(
            backend=backend,
            spec=spec,
            conf_threshold=conf_threshold,
            iou_threshold=iou_threshold,
            class_thresholds=class_thresholds,
            max_det=max_det,
            multi_label=multi_label,
            head=head,
        )

    def risk(self, detections: Detections) -> RiskLevel:
        """Risk level of one scan's detections (see :data:`RISK_RULES`)."""
        return assess_risk(detections, self.risk_rules)
