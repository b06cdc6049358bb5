"""Batch sizes of a served model, derived once from its :class:`~vision.types.ModelSpec`.

The TensorRT engine's optimisation profile and the Triton config's dynamic batcher must agree: an
engine tuned for batch 8 behind a batcher that prefers 16 wastes the tuning, and a batcher that
forms batches above the profile's maximum gets every such request rejected. Both read
:func:`batch_plan`, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from vision.types import ModelSpec


@dataclass(frozen=True)
class BatchPlan:
    """Batch sizes for one model.

    Attributes:
        min_batch: smallest batch (the profile's ``min``), always 1.
        opt_batch: batch the engine's kernels are tuned for (the profile's ``opt``).
        max_batch: largest batch (the profile's ``max`` and Triton's ``max_batch_size``).
        preferred: batch sizes Triton's dynamic batcher tries to form, ascending, ending at
            ``max_batch``.
    """

    min_batch: int
    opt_batch: int
    max_batch: int
    preferred: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"need 1 <= min <= opt <= max batch, got {self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if not self.preferred or list(self.preferred) != sorted(set(self.preferred)):
            raise ValueError(f"preferred batch sizes must be ascending and distinct, got {self.preferred}")
        if self.preferred[0] < self.min_batch or self.preferred[-1] != self.max_batch:
            raise ValueError(f"preferred batch sizes must lie in [{self.min_batch}, {self.max_batch}] and end at max")


def batch_plan(spec: ModelSpec) -> BatchPlan:
    """The batch plan of a model.

    Preferred sizes are the powers of two from ``max_batch / 8`` up, plus ``max_batch`` itself:
    under load the batcher then forms large batches (throughput), while a lone request is never held
    back waiting for a big one (the queue delay bounds that). The optimisation target is the
    middle of the range, the batch size a busy server runs most often; kernels tuned there lose
    little at the ends, while tuning for ``max_batch`` penalises the common small batches.

    A model whose spec says ``dynamic_batch=False`` gets a plan of exactly ``max_batch``.

    Args:
        spec: the model's spec (``max_batch``, ``dynamic_batch``).

    Returns:
        The plan; e.g. ``max_batch=32`` gives opt 16 and preferred ``(4, 8, 16, 32)``.
    """
    top = spec.max_batch
    if not spec.dynamic_batch:
        return BatchPlan(min_batch=top, opt_batch=top, max_batch=top, preferred=(top,))
    preferred = []
    size = 1
    while size < top:
        if size >= max(1, top // 8):
            preferred.append(size)
        size *= 2
    preferred.append(top)
    opt = 1
    while opt * 2 <= max(1, top // 2):
        opt *= 2
    return BatchPlan(min_batch=1, opt_batch=opt, max_batch=top, preferred=tuple(preferred))
