"""Train the similarity model, measure it on held-out owners, calibrate it and ship it.

``customs-vision train similarity`` calls :func:`train`. One run:

1. **Data.** Real signatures (owner = writer x name), synthetic stamps and signatures from the
   document generators (owner = authority or writer, with skilled forgeries), plus any
   ``<owner>/genuine|forged`` folders given. Items are split by writer / authority id
   (:func:`similarity.data.split_items`), so held-out owners are never seen in training.
2. **Training.** Supervised contrastive (or batch-hard triplet) loss, optionally plus an
   own-forgery hinge (:class:`similarity.model.OwnForgeryLoss`), on P x K batches with forgeries of the batch's
   owners (:class:`similarity.data.PKBatchSampler`) and scan-condition augmentation; with
   several kinds, steps alternate between kinds so every batch compares like with like. AdamW,
   linear warm-up then cosine decay, a step count and/or a wall-clock budget.
3. **Export.** The embedding branch to ONNX with a PyTorch parity check.
4. **Held-out measurement through the exported model** (ONNX Runtime via
   :class:`similarity.embedder.Embedder`): EER, ROC AUC and FAR at 1 % FRR per kind and impostor
   category (:mod:`similarity.evaluation`).
5. **Calibration** per kind on those held-out pairs (:func:`similarity.scoring.fit_calibration`),
   the impostor side drawn equally from each available category; the decision threshold at the
   equal-error point of the same pool.
6. **Model card** ``<out>/<name>.json`` beside ``<out>/<name>.onnx``.
"""

from __future__ import annotations

import json
import math
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from similarity.data import (
    DataError,
    PKBatchSampler,
    ScanAugment,
    SpecimenDataset,
    SpecimenItem,
    count_summary,
    default_signatures_dir,
    heldout_fraction_of,
    load_signature_dataset,
    load_specimen_folder,
    render_specimen_items,
    split_items,
)
from similarity.embedder import Embedder
from similarity.evaluation import IMPOSTOR_CATEGORIES, pair_scores, pool_impostors, report, skilled_by_forgery
from similarity.model import EmbeddingNet, OwnForgeryLoss, export_onnx, make_loss
from similarity.scoring import DecisionPolicy, Scorer, ScoringError, fit_calibration, reliability
from vision.modelcard import ModelCard, sha256_file
from vision.types import ModelSpec

__all__ = [
    "SIGNATURE_CITATION",
    "TrainConfig",
    "TrainResult",
    "build_items",
    "learning_rate",
    "schedule_progress",
    "train",
]

#: Citation required by the real signature set's PROVENANCE.md.
SIGNATURE_CITATION = (
    "Luo et al., 'Is There a Difference between Paper and Electronic Chinese Signatures?', "
    "Adv. Intell. Syst. 5:2300439 (2023), doi 10.1002/aisy.202300439; data: github.com/dishangti/"
    "Cross-media-Signatures @ 46ca4087849be0cd61b8667cb109bf1498939418 (MIT licence)"
)

#: Mean/std of the network input (after the contrast stretch most pixels are white paper).
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on (recorded in the model card).

    Attributes:
        kinds: ``"signature"`` and/or ``"stamp"``; one shared network serves all of them.
        name: model name (file stem in ``out``).
        version: model version; default ``YYYY.MM.DD-<seed>`` at start.
        input_size: network input ``(height, width)``.
        embedding_dim: embedding length D.
        width: channels of the network's first stage.
        blocks_per_stage: residual blocks per stage.
        steps: optimiser steps (the upper bound when ``time_budget_s`` is set).
        time_budget_s: stop training after this many seconds (evaluation and export come after);
            the learning-rate schedule then follows time or steps, whichever is further along.
        p: owners per batch.
        k: genuine images per owner per batch.
        forgeries: forged images added per batch.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        loss: ``"supcon"`` or ``"triplet"`` (:func:`similarity.model.make_loss`).
        temperature: SupCon temperature.
        margin: triplet margin; ``None`` = soft margin.
        forgery_weight: weight of :class:`similarity.model.OwnForgeryLoss` (each owner's genuine
            pairs above its own forgeries) added to the metric loss; 0 (the default) disables it.
            Off by default: in a 300-step stamp run with it (weight 1, 16 forgeries per batch)
            the held-out skilled EER stayed at chance (0.495; 0.497 without it), issue #5.
        forgery_margin: that term's cosine margin.
        augment: :class:`similarity.data.ScanAugment` strength (0 none, 1 the default mix).
            Without it, 300 stamp steps memorised the training crops (skilled EER 0.15 on training
            authorities, 0.48 on held-out ones, issue #5): four genuine renders per owner are too
            few views to learn what stays the same across impressions.
        threads: torch intra-op threads.
        seed: seeds data split salt-independent randomness, sampling, augmentation and init.
        heldout: fraction of writers/authorities held out.
        signatures_dir: real signature set; ``None`` = :func:`default_signatures_dir`.
        use_real_signatures: whether to use it at all.
        synth_owners: synthetic authorities (stamps) and writers (signatures) per kind, rendered by
            the document generators (0 = none). Their ids (``SIM-AUTH-00000``, ``SIM-W-00000``, ...)
            are outside the generators' document population (``AUTH-*``, ``W-*``), so synthetic
            test sets made from that population are never seen here.
        synth_per_owner: genuine specimens per synthetic owner.
        synth_forgeries: skilled forgeries per synthetic owner.
        cache_dir: where rendered specimens are kept between runs (``None``: render every time).
        extra_folders: ``(kind, folder)`` pairs of ``<owner>/genuine|forged`` trees.
        band: inconclusive band half-width (percentage points) written to the card.
        notes: free text for the card (e.g. why a model is interim).
    """

    kinds: tuple[str, ...] = ("signature", "stamp")
    name: str = "similarity"
    version: str = ""
    input_size: tuple[int, int] = (96, 192)
    embedding_dim: int = 128
    width: int = 32
    blocks_per_stage: int = 1
    steps: int = 1500
    time_budget_s: float | None = None
    p: int = 24
    k: int = 2
    forgeries: int = 8
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 50
    loss: str = "supcon"
    temperature: float = 0.1
    margin: float | None = 0.2
    forgery_weight: float = 0.0
    forgery_margin: float = 0.2
    augment: float = 1.0
    threads: int = 1
    seed: int = 0
    heldout: float = 0.2
    signatures_dir: Path | None = None
    use_real_signatures: bool = True
    synth_owners: int = 300
    synth_per_owner: int = 4
    synth_forgeries: int = 3
    cache_dir: Path | None = Path("runs/similarity/cache")
    extra_folders: tuple[tuple[str, Path], ...] = ()
    band: float = 5.0
    notes: str = ""

    def spec(self, version: str) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            version=version,
            input_size=self.input_size,
            input_name="images",
            output_names=("embeddings",),
            mean=INPUT_MEAN,
            std=INPUT_STD,
            max_batch=64,
            dynamic_batch=True,
            pad_value=255,
        )


@dataclass
class TrainResult:
    """What a run produced."""

    card_path: Path
    onnx_path: Path
    checkpoint_path: Path
    metrics: dict[str, Any]
    steps_done: int
    train_seconds: float
    log: list[dict[str, float]] = field(default_factory=list)


def build_items(config: TrainConfig, log: Callable[[str], None] = print) -> dict[str, list[SpecimenItem]]:
    """All items per kind, from the sources the config enables.

    Raises:
        DataError: a kind ends up without any item.
    """
    items: dict[str, list[SpecimenItem]] = {k: [] for k in config.kinds}
    if "signature" in items and config.use_real_signatures:
        root = config.signatures_dir or default_signatures_dir()
        real = load_signature_dataset(root)
        log(f"real signatures: {len(real)} images from {root}")
        items["signature"].extend(real)
    for kind in items:
        if not config.synth_owners:
            break
        t0 = time.perf_counter()
        ids = [f"SIM-{'AUTH' if kind == 'stamp' else 'W'}-{i:05d}" for i in range(config.synth_owners)]
        cache = None
        if config.cache_dir is not None:
            tag = f"{kind}-{config.synth_owners}x{config.synth_per_owner}+{config.synth_forgeries}-s{config.seed}"
            cache = Path(config.cache_dir) / tag
        synth = render_specimen_items(
            kind,
            ids,
            per_owner=config.synth_per_owner,
            forgeries=config.synth_forgeries,
            seed=config.seed,
            cache_dir=cache,
        )
        log(f"synthetic {kind}s: {len(synth)} crops of {len(ids)} owners in {time.perf_counter() - t0:.0f} s")
        items[kind].extend(synth)
    for kind, folder in config.extra_folders:
        if kind in items:
            extra = load_specimen_folder(folder, kind, prefix=f"{kind}:{Path(folder).name}/")
            log(f"{kind} folder {folder}: {len(extra)} images")
            items[kind].extend(extra)
    for kind, kind_items in items.items():
        if not kind_items:
            raise DataError(f"no training data for {kind}: enable a source for it")
    return items


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    command: str = "",
    runs_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Run steps 1-6 of the module docstring.

    Args:
        config: the run's settings.
        out_dir: where ``<name>.onnx`` and ``<name>.json`` are written (``models/`` to ship).
        command: the command line that started the run (recorded in the card's metrics).
        runs_dir: where the PyTorch checkpoint goes; default ``runs/similarity/<version>``.
        log: progress sink.

    Returns:
        Paths, metrics and the training log.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = config.version or f"{datetime.now(UTC):%Y.%m.%d}-{config.seed}"
    spec = config.spec(version)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    started = datetime.now(UTC)

    items = build_items(config, log)
    splits = {kind: split_items(kind_items, config.heldout) for kind, kind_items in items.items()}
    for kind, (tr, te) in splits.items():
        log(f"{kind}: train {count_summary(tr)}; held out {count_summary(te)}")

    model = EmbeddingNet(
        embedding_dim=config.embedding_dim, width=config.width, blocks_per_stage=config.blocks_per_stage
    )
    model = model.to(memory_format=torch.channels_last)
    steps_done, train_seconds, history = _fit(model, {k: v[0] for k, v in splits.items()}, spec, config, log)

    onnx_path = out_dir / f"{config.name}.onnx"
    exported = export_onnx(model, onnx_path, spec)
    log(f"exported {onnx_path} (ONNX vs PyTorch max abs diff {exported.max_abs_diff:.2e})")
    checkpoint = Path(runs_dir or Path("runs") / "similarity" / version) / "last.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "config": model.config(), "spec": spec.to_dict()}, checkpoint)

    from vision.runtime.registry import create_backend

    embedder = Embedder(backend=create_backend("onnxruntime", path=onnx_path, threads=config.threads), spec=spec)
    metrics: dict[str, Any] = {
        "command": command,
        "protocol": "every pair of held-out images (writers/authorities never seen in training), "
        "embedded by the exported ONNX model through ONNX Runtime",
        "onnx_parity_max_abs_diff": exported.max_abs_diff,
        "heldout": {},
        "scoring": {},
    }
    for kind, (_, test) in splits.items():
        t0 = time.perf_counter()
        emb = embedder.embed([it.image() for it in test])
        scores = pair_scores(test, emb, seed=config.seed)
        scorer = _calibrate(kind, scores, band=config.band, seed=config.seed)
        metrics["scoring"][kind] = scorer.to_dict() | {
            "calibration_impostors": [c for c in IMPOSTOR_CATEGORIES if scores[c].size]
        }
        by_dataset = {}
        for name in sorted({it.dataset for it in test}):
            rows = [i for i, it in enumerate(test) if it.dataset == name]
            subset = [test[i] for i in rows]
            by_dataset[name] = report(pair_scores(subset, emb[rows], seed=config.seed), scorer) | {
                "data": count_summary(subset)
            }
        metrics["heldout"][kind] = report(scores, scorer) | {
            "skilled_by_forgery": skilled_by_forgery(test, emb),
            "data": count_summary(test),
            "by_dataset": by_dataset,
            "calibration_check": _cross_fitted_reliability(kind, test, emb, config),
        }
        for name, block in by_dataset.items():
            log(f"{kind} held-out {name}: {json.dumps(block['metrics'])}")
        log(f"{kind} held-out evaluation took {time.perf_counter() - t0:.0f} s")

    card = ModelCard(
        name=config.name,
        version=version,
        task="embed",
        file=onnx_path.name,
        sha256=sha256_file(onnx_path),
        spec=spec,
        data=_data_section(config, splits),
        metrics=metrics,
        training={
            "architecture": f"residual CNN (stride-4 stem + 4 stages), GeM pooling, linear {config.embedding_dim}-d, "
            "L2-normalised",
            "model_config": model.config(),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "loss": (
                f"supervised contrastive, temperature {config.temperature}"
                if config.loss == "supcon"
                else f"batch-hard triplet on cosine distance, margin {config.margin}"
            )
            + (
                f" + {config.forgery_weight} x own-forgery triplet hinge, margin {config.forgery_margin}"
                if config.forgery_weight
                else ""
            ),
            "config": _jsonable(asdict(config)),
            "steps_done": steps_done,
            "train_seconds": round(train_seconds, 1),
            "started": started.isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {config.threads} thread(s)",
            "loss_log": history[-20:],
        },
        notes=config.notes,
    )
    card_path = out_dir / f"{config.name}.json"
    card.save(card_path)
    log(f"wrote {card_path}")
    return TrainResult(card_path, onnx_path, checkpoint, metrics, steps_done, train_seconds, history)


def schedule_progress(step: int, elapsed: float, config: TrainConfig) -> float:
    """Fraction of training done, in ``[0, 1]``.

    On a shared machine the step rate varies, so with a time budget the schedule follows whichever
    of steps and wall-clock seconds is further along: the learning rate has decayed to zero when
    training stops, either way.
    """
    by_steps = step / config.steps
    by_time = elapsed / config.time_budget_s if config.time_budget_s else 0.0
    return min(max(by_steps, by_time), 1.0)


def learning_rate(step: int, elapsed: float, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to 0 over :func:`schedule_progress`."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    warm = config.warmup_steps / config.steps
    frac = (schedule_progress(step, elapsed, config) - warm) / max(1.0 - warm, 1e-9)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0)))


def _fit(
    model: EmbeddingNet,
    train_items: dict[str, list[SpecimenItem]],
    spec: ModelSpec,
    config: TrainConfig,
    log: Callable[[str], None],
) -> tuple[int, float, list[dict[str, float]]]:
    """The optimisation loop; returns (steps done, seconds, loss history)."""
    augment = ScanAugment(strength=config.augment)
    loaders = {}
    for i, (kind, kind_items) in enumerate(sorted(train_items.items())):
        dataset = SpecimenDataset(kind_items, spec, augment=augment, seed=config.seed * 10 + i)
        sampler = PKBatchSampler(
            kind_items, p=config.p, k=config.k, forgeries=config.forgeries, batches=10**9, seed=config.seed * 10 + i
        )
        loaders[kind] = iter(torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=0))
    kinds = sorted(loaders)
    criterion = make_loss(config.loss, margin=config.margin, temperature=config.temperature)
    own_forgery = OwnForgeryLoss(config.forgery_margin)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    model.train()
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    running = 0.0
    step = 0
    while step < config.steps:
        elapsed = time.perf_counter() - t0
        if schedule_progress(step, elapsed, config) >= 1.0:
            log(f"time budget of {config.time_budget_s:.0f} s reached after {step} of {config.steps} steps")
            break
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(step, elapsed, config)
        kind = kinds[step % len(kinds)]
        images, labels, claimed = next(loaders[kind])
        emb = model(images.contiguous(memory_format=torch.channels_last))
        loss = criterion(emb, labels)
        if config.forgery_weight:
            loss = loss + config.forgery_weight * own_forgery(emb, labels, claimed)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        value = loss.item()
        running = 0.95 * running + 0.05 * value if step else value
        step += 1
        if step % 25 == 0 or step == config.steps:
            elapsed = time.perf_counter() - t0
            history.append({"step": step, "loss_ema": round(running, 4), "seconds": round(elapsed, 1)})
            lr = learning_rate(step, elapsed, config)
            log(f"step {step}/{config.steps} loss {running:.4f} lr {lr:.2e} {elapsed:.0f} s")
    model.eval()
    return step, time.perf_counter() - t0, history


def _pooled_impostors(kind: str, scores: dict[str, npt.NDArray[np.float64]], seed: int) -> npt.NDArray[np.float64]:
    """An equal mix of the available impostor categories (:func:`similarity.evaluation.pool_impostors`)."""
    if not scores["genuine"].size or not any(scores[c].size for c in IMPOSTOR_CATEGORIES):
        raise DataError(f"{kind}: held-out data has no genuine or no impostor pairs to calibrate on")
    return pool_impostors([scores[c] for c in IMPOSTOR_CATEGORIES], seed)


def _calibrate(kind: str, scores: dict[str, npt.NDArray[np.float64]], *, band: float, seed: int) -> Scorer:
    """Platt calibration and EER threshold on genuine pairs versus :func:`_pooled_impostors`."""
    impostor = _pooled_impostors(kind, scores, seed)
    calibration = fit_calibration(scores["genuine"], impostor)
    policy = DecisionPolicy.at_eer(calibration, scores["genuine"], impostor, band=band)
    return Scorer(kind=kind, calibration=calibration, policy=policy)


def _cross_fitted_reliability(
    kind: str, test: list[SpecimenItem], emb: npt.NDArray[np.float32], config: TrainConfig
) -> dict[str, Any]:
    """Calibration measured on owners it was not fitted on: the held-out owners are halved by
    hash, a calibration is fitted on each half and its reliability measured on the other half."""
    halves = [
        [i for i, it in enumerate(test) if (heldout_fraction_of(it.split_key, "calibration-check") < 0.5) == side]
        for side in (True, False)
    ]
    out: dict[str, Any] = {"protocol": "2-fold by owner: fit on one half of the held-out owners, measure on the other"}
    try:
        scores = [pair_scores([test[i] for i in h], emb[h], seed=config.seed) for h in halves]
        for name, (fit, check) in (("fit_a_check_b", (0, 1)), ("fit_b_check_a", (1, 0))):
            scorer = _calibrate(kind, scores[fit], band=config.band, seed=config.seed)
            impostor = _pooled_impostors(kind, scores[check], config.seed)
            out[name] = reliability(scorer.calibration, scores[check]["genuine"], impostor)
    except (DataError, ScoringError) as e:  # too few held-out owners to halve
        out["skipped"] = str(e)
    return out


def _data_section(
    config: TrainConfig, splits: dict[str, tuple[list[SpecimenItem], list[SpecimenItem]]]
) -> dict[str, Any]:
    sources: list[dict[str, Any]] = []
    if "signature" in splits and config.use_real_signatures:
        sources.append(
            {
                "kind": "signature",
                "name": "signatures-crossmedia (111 writers x 10 names, genuine only)",
                "citation": SIGNATURE_CITATION,
                "owner": "writer x name",
                "hard_negatives": "same name written by another writer",
            }
        )
    for kind in splits:
        if config.synth_owners:
            sources.append(
                {
                    "kind": kind,
                    "name": "detectors.synth.doc_specimens.render_specimen (synthetic, scanned on printed paper)",
                    "owners": config.synth_owners,
                    "owner_ids": f"SIM-{'AUTH' if kind == 'stamp' else 'W'}-00000..{config.synth_owners - 1:05d}",
                    "genuine_per_owner": config.synth_per_owner,
                    "skilled_forgeries_per_owner": config.synth_forgeries,
                    "seed": config.seed,
                }
            )
    for kind, folder in config.extra_folders:
        sources.append({"kind": kind, "folder": str(folder)})
    return {
        "sources": sources,
        "split": f"by writer / authority id: sha256('similarity-split-v1' + id) < {config.heldout} is held out",
        "train": {k: count_summary(v[0]) for k, v in splits.items()},
        "heldout": {k: count_summary(v[1]) for k, v in splits.items()},
        "augmentation": f"ScanAugment (strength {config.augment}): margin, rotation, stroke width, ink colour, "
        "paper tint, resolution, blur, noise, JPEG, greyscale",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def main_command_line(argv: Sequence[str] | None = None) -> str:
    """The command line as typed, for the card (``customs-vision`` + the arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["customs-vision", *args])


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (used by tests and the CLI)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
