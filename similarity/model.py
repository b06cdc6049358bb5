"""The Siamese embedding network, its metric-learning loss and its ONNX export.

A Siamese network is one embedding CNN applied to both images of a pair; only that shared branch
is exported and served (:class:`EmbeddingNet`), the pair is formed afterwards by comparing
embeddings (cosine similarity, :mod:`similarity.scoring`).

The branch is a compact residual CNN built from scratch (no downloaded weights): a stride-4 stem
(5x5 convolution, max pooling) and four stages of basic residual blocks, the last three halving
the resolution, then generalised mean (GeM) pooling, a linear projection and L2 normalisation.
GeM (Radenović et al., TPAMI 2019) sits between average and max pooling; thin ink strokes occupy
few cells of the last feature map, and plain averaging dilutes them with paper. At the defaults
(width 32, one block per stage, 96 x 192 input) it has 1.26 M parameters and costs 0.16 GFLOPs
per crop (measured with ``torch.utils.flop_counter``); a training step of 48 crops takes about
0.5 s on one core of the project's CPU. A stride-2 stem with two blocks per stage (2.8 M
parameters) was 5x slower per step here, too slow for CPU training.

Loss: supervised contrastive loss (:class:`SupConLoss`, the default) or batch-hard triplet loss
(:class:`BatchHardTripletLoss`, Hermans et al., "In Defense of the Triplet Loss", 2017), both on
cosine similarity. Both let the hard negatives that matter here (a skilled forgery of the same
seal, the same name written by another person) dominate the gradient as soon as the sampler puts
them in one batch (:class:`similarity.data.PKBatchSampler`). Measured here: batch-hard triplet
from scratch collapsed to one point (loss stuck at the margin, 0.200, from step 100 of 200) on
the real signatures, a known failure of hardest-pair mining early in training; SupCon did not.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from vision.types import ModelSpec

__all__ = [
    "BatchHardTripletLoss",
    "EmbeddingNet",
    "ExportParityError",
    "ExportResult",
    "OwnForgeryLoss",
    "SiameseNet",
    "SupConLoss",
    "export_onnx",
    "make_loss",
]


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18's block)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return functional.relu(y + self.shortcut(x), inplace=True)


class _GeM(nn.Module):
    """Generalised mean pooling ``(mean(x^p))^(1/p)`` over H and W with a learnt ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class EmbeddingNet(nn.Module):
    """The shared Siamese branch: crops → unit-norm embeddings.

    Args:
        embedding_dim: length D of the output vector.
        width: channels of the first stage; the stages have ``width * (1, 2, 4, 8)`` channels.
        blocks_per_stage: residual blocks per stage (2 = ResNet-18 layout).

    Input ``(B, 3, H, W)`` float32 as produced by :func:`similarity.embedder.preprocess_crops`
    (H and W multiples of 32 give exact stage sizes, others work too); output ``(B, D)`` float32
    with unit L2 norm per row.
    """

    def __init__(self, *, embedding_dim: int = 128, width: int = 32, blocks_per_stage: int = 1) -> None:
        super().__init__()
        if embedding_dim < 2 or width < 4 or blocks_per_stage < 1:
            raise ValueError(
                f"need embedding_dim >= 2, width >= 4, blocks_per_stage >= 1; "
                f"got {embedding_dim}, {width}, {blocks_per_stage}"
            )
        self.embedding_dim = embedding_dim
        self.width = width
        self.blocks_per_stage = blocks_per_stage
        # Stride 4 before the first stage (as ResNet's stem): strokes a few pixels wide survive,
        # and the full-resolution convolutions that would dominate the cost on a CPU are avoided.
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 5, 2, 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        c_in = width
        for i, mult in enumerate((1, 2, 4, 8)):
            c_out = width * mult
            for j in range(blocks_per_stage):
                stride = 2 if (j == 0 and i > 0) else 1
                layers.append(_BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.pool = _GeM()
        self.head = nn.Linear(c_in, embedding_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual branch: every block starts as the identity,
        # which trains faster and more stably from scratch (Goyal et al., 2017).
        for m in self.modules():
            if isinstance(m, _BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(images))
        x = self.head(self.pool(x))
        # x / max(||x||, eps) rather than F.normalize so the ONNX graph is plain ReduceL2/Max/Div.
        return x / x.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)

    def config(self) -> dict[str, int]:
        """Constructor arguments, stored in the checkpoint and the model card."""
        return {"embedding_dim": self.embedding_dim, "width": self.width, "blocks_per_stage": self.blocks_per_stage}


class SiameseNet(nn.Module):
    """Both sides of a pair through one shared :class:`EmbeddingNet`.

    ``forward(a, b)`` takes two ``(B, 3, H, W)`` batches and returns their cosine similarities
    ``(B,)`` in ``[-1, 1]``; :attr:`branch` is what gets exported.
    """

    def __init__(self, branch: EmbeddingNet) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (self.branch(a) * self.branch(b)).sum(dim=1)


class BatchHardTripletLoss(nn.Module):
    """Batch-hard triplet loss on cosine distance ``1 - cos``.

    Args:
        margin: hinge margin; ``None`` uses the soft margin ``log(1 + exp(d_ap - d_an))``.

    ``forward(embeddings, labels)``: embeddings ``(B, D)`` unit-norm float, labels ``(B,)`` int64.
    Samples sharing a label are positives of each other; a sample whose label occurs once (a
    forgery given a label of its own) is never an anchor, only a negative. Returns the mean loss
    over anchors that have both a positive and a negative (0 with ``requires_grad`` if none).
    """

    def __init__(self, margin: float | None = 0.2) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ValueError(f"margin must be >= 0 or None, got {margin}")
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(f"expected embeddings (B, D) and labels (B,), got {embeddings.shape} and {labels.shape}")
        dist = 1.0 - embeddings @ embeddings.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask = same & ~eye
        neg_mask = ~same
        valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
        if not bool(valid.any()):
            return embeddings.sum() * 0.0
        hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(dim=1)
        hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(dim=1)
        gap = (hardest_pos - hardest_neg)[valid]
        loss = functional.softplus(gap) if self.margin is None else functional.relu(gap + self.margin)
        return loss.mean()


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020) on cosine similarity.

    For each anchor, the softmax over ``cos / temperature`` to every other sample in the batch is
    pushed towards its positives (same label). Unlike a hinge on the hardest pair, the all-equal
    embedding is not a resting point (its loss is ``log(B - 1)``, far from the minimum), so it
    trains stably from scratch; a low temperature still weights the hardest negatives most.

    Args:
        temperature: softmax temperature, > 0.

    ``forward(embeddings, labels)``: embeddings ``(B, D)`` unit-norm float, labels ``(B,)`` int64
    with the same conventions as :class:`BatchHardTripletLoss` (unique label = negative only).
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(f"expected embeddings (B, D) and labels (B,), got {embeddings.shape} and {labels.shape}")
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        logits = (embeddings @ embeddings.T / self.temperature).masked_fill(eye, float("-inf"))
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        pos_mask = (labels[:, None] == labels[None, :]) & ~eye
        n_pos = pos_mask.sum(dim=1)
        valid = n_pos > 0
        if not bool(valid.any()):
            return embeddings.sum() * 0.0
        mean_pos = log_prob.masked_fill(~pos_mask, 0.0).sum(dim=1) / n_pos.clamp(min=1)
        return -mean_pos[valid].mean()


class OwnForgeryLoss(nn.Module):
    """Puts each owner's genuine pairs above that owner's own forgeries, by a margin.

    For every anchor ``a`` (genuine, owner ``o``), positive ``p`` (another genuine item of ``o``)
    and forgery ``f`` presented as ``o`` in the batch, the hinge
    ``relu(cos(a, f) - cos(a, p) + margin)``, averaged over all such triplets.

    Why a term of its own: in :class:`SupConLoss` a forgery is one negative among the whole batch
    and is never tied to the owner it imitates, so nothing asks for the one comparison the skilled
    forgery EER measures (a genuine reference against a forgery of the same owner); a network that
    embeds only what tells owners apart (shape, colour, layout), which every forgery of the owner
    shares, already minimises it. This is the verification ranking itself, on the pairs that
    :class:`similarity.data.PKBatchSampler` puts together.

    Args:
        margin: required cosine gap between a genuine pair and a genuine-forgery pair, >= 0.

    ``forward(embeddings, labels, claimed)``: embeddings ``(B, D)`` unit-norm float; labels ``(B,)``
    int64 as for :class:`SupConLoss` (genuine: owner index >= 0; forgery: a unique negative);
    claimed ``(B,)`` int64, the owner index each sample is presented as (for a forgery, the owner
    it imitates; -1 unknown). Returns 0 with ``requires_grad`` when the batch holds no triplet.
    """

    def __init__(self, margin: float = 0.2) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, claimed: torch.Tensor) -> torch.Tensor:
        b = embeddings.shape[0]
        if embeddings.ndim != 2 or labels.shape != (b,) or claimed.shape != (b,):
            raise ValueError(
                f"expected embeddings (B, D), labels (B,) and claimed (B,), "
                f"got {embeddings.shape}, {labels.shape} and {claimed.shape}"
            )
        sims = embeddings @ embeddings.T
        genuine = labels >= 0
        eye = torch.eye(b, dtype=torch.bool, device=labels.device)
        # pos[a, p]: p is another genuine item of a's owner; own[a, f]: f is a forgery of a's owner.
        pos = genuine[:, None] & genuine[None, :] & (labels[:, None] == labels[None, :]) & ~eye
        own = genuine[:, None] & ~genuine[None, :] & (labels[:, None] == claimed[None, :])
        valid = pos[:, :, None] & own[:, None, :]  # (a, p, f)
        if not bool(valid.any()):
            return embeddings.sum() * 0.0
        gap = sims[:, None, :] - sims[:, :, None] + self.margin  # cos(a, f) - cos(a, p) + margin
        return functional.relu(gap[valid]).mean()


def make_loss(name: str, *, margin: float | None = 0.2, temperature: float = 0.1) -> nn.Module:
    """``"supcon"`` (:class:`SupConLoss`) or ``"triplet"`` (:class:`BatchHardTripletLoss`)."""
    if name == "supcon":
        return SupConLoss(temperature)
    if name == "triplet":
        return BatchHardTripletLoss(margin)
    raise ValueError(f"unknown loss {name!r}; expected 'supcon' or 'triplet'")


class ExportParityError(RuntimeError):
    """The exported ONNX model disagrees with the PyTorch model beyond the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime reproduces PyTorch."""

    path: Path
    max_abs_diff: float
    batch_sizes_checked: tuple[int, ...]


def export_onnx(
    model: EmbeddingNet,
    path: str | Path,
    spec: ModelSpec,
    *,
    opset: int = 17,
    atol: float = 1e-4,
    seed: int = 0,
) -> ExportResult:
    """Export the embedding branch to ONNX and check it against PyTorch.

    The graph has one input ``spec.input_name`` ``(B, 3, H, W)`` float32 and one output
    ``spec.output_names[0]`` ``(B, D)`` float32, with a dynamic batch dimension. The check runs
    random inputs at batch 1 and 3 through both PyTorch and ONNX Runtime.

    Args:
        model: the branch to export (put in eval mode here; its training mode is restored).
        path: ``.onnx`` file to write.
        spec: input size and tensor names.
        opset: ONNX opset.
        atol: largest accepted absolute difference of any embedding component.
        seed: seed of the random check inputs.

    Returns:
        The written path and the largest absolute difference seen.

    Raises:
        ExportParityError: the difference exceeds ``atol`` (the file is left for inspection).
    """
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    h, w = spec.input_size
    out_name = spec.output_names[0]
    try:
        dummy = torch.zeros(1, 3, h, w)
        # The TorchScript exporter (dynamo=False) is deprecated in favour of torch.export, which needs
        # the onnxscript package (not a dependency). It handles this plain CNN; the parity check
        # below is what guarantees the exported graph.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (dummy,),
                str(path),
                input_names=[spec.input_name],
                output_names=[out_name],
                dynamic_axes={spec.input_name: {0: "batch"}, out_name: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        worst = 0.0
        sizes = (1, 3)
        for b in sizes:
            x = rng.standard_normal((b, 3, h, w)).astype(np.float32)
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            got = session.run([out_name], {spec.input_name: x})[0]
            worst = max(worst, float(np.abs(ref - got).max()))
    finally:
        model.train(was_training)
    if worst > atol:
        raise ExportParityError(f"ONNX export {path} differs from PyTorch by {worst:.2e} (tolerance {atol:.0e})")
    return ExportResult(path=path, max_abs_diff=worst, batch_sizes_checked=sizes)
