from __future__ import annotations

import numpy as np
import pytest
import torch

from similarity.embedder import Embedder
from similarity.model import (
    BatchHardTripletLoss,
    EmbeddingNet,
    OwnForgeryLoss,
    SiameseNet,
    SupConLoss,
    export_onnx,
    make_loss,
)
from tests.similarity.conftest import make_specimen
from vision.runtime.registry import create_backend
from vision.types import ModelSpec

SPEC = ModelSpec(
    name="simtest",
    version="t1",
    input_size=(32, 64),
    output_names=("embeddings",),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    pad_value=255,
)


def _tiny() -> EmbeddingNet:
    torch.manual_seed(0)
    return EmbeddingNet(embedding_dim=8, width=4)


def test_embeddings_have_unit_norm_and_the_siamese_pair_is_their_cosine():
    net = _tiny().eval()
    a, b = torch.randn(3, 3, 32, 64), torch.randn(3, 3, 32, 64)
    with torch.no_grad():
        ea, eb = net(a), net(b)
        cos = SiameseNet(net)(a, b)
    assert ea.shape == (3, 8)
    torch.testing.assert_close(ea.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(cos, (ea * eb).sum(dim=1))


@pytest.mark.parametrize("kwargs", [{"embedding_dim": 1}, {"width": 2}, {"blocks_per_stage": 0}])
def test_embedding_net_rejects_degenerate_sizes(kwargs):
    with pytest.raises(ValueError):
        EmbeddingNet(**kwargs)


def _unit(rows):
    t = torch.tensor(rows, dtype=torch.float32)
    return t / t.norm(dim=1, keepdim=True)


def test_triplet_loss_is_zero_when_classes_are_separated_by_more_than_the_margin():
    emb = _unit([[1, 0], [1, 0.01], [0, 1], [0.01, 1]])
    labels = torch.tensor([0, 0, 1, 1])
    assert float(BatchHardTripletLoss(margin=0.2)(emb, labels)) == pytest.approx(0.0, abs=1e-6)
    # Swap the labels of two samples: every anchor's hardest positive is now far away.
    assert float(BatchHardTripletLoss(margin=0.2)(emb, torch.tensor([0, 1, 0, 1]))) > 0.5


def test_supcon_loss_prefers_grouped_embeddings_and_ignores_anchors_without_positives():
    labels = torch.tensor([0, 0, 1, 1, -5])  # -5: a forgery with a label of its own
    good = _unit([[1, 0], [1, 0.05], [0, 1], [0.05, 1], [-1, -1]])
    bad = _unit([[1, 0], [0, 1], [0, 1], [1, 0], [-1, -1]])
    loss = SupConLoss(0.1)
    assert float(loss(good, labels)) < float(loss(bad, labels))
    x = torch.randn(4, 8, requires_grad=True)
    out = loss(x / x.norm(dim=1, keepdim=True), torch.tensor([1, 2, 3, 4]))  # no positives at all
    out.backward()
    assert out.item() == 0.0 and x.grad is not None


def test_own_forgery_loss_ranks_each_owners_genuine_pair_above_its_own_forgery():
    # Owner 0: genuine at 0 and 0.1 rad; owner 1: genuine at 2 and 2.1 rad; one forgery of owner 0.
    labels = torch.tensor([0, 0, 1, 1, -5])
    claimed = torch.tensor([0, 0, 1, 1, 0])
    loss = OwnForgeryLoss(margin=0.2)

    def at(forgery_angle):
        angles = torch.tensor([0.0, 0.1, 2.0, 2.1, forgery_angle])
        return torch.stack([angles.cos(), angles.sin()], dim=1)

    # Forgery 1.2 rad from owner 0: cos(a, f) <= cos(1.1) = 0.45 < cos(0.1) - 0.2; every triplet satisfied.
    assert float(loss(at(1.2), labels, claimed)) == pytest.approx(0.0, abs=1e-6)
    # Forgery on top of owner 0's first item: both triplets violated by about the margin.
    assert float(loss(at(0.0), labels, claimed)) == pytest.approx(0.2 + (1 - np.cos(0.1)) / 2, abs=1e-4)
    # The same forgery presented as owner 1 is far from owner 1: no loss. Owner 0's forgery, close
    # to owner 1, does not count against owner 1 either (SupCon handles negatives of other owners).
    assert float(loss(at(0.0), labels, torch.tensor([0, 0, 1, 1, 1]))) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(at(2.0), labels, claimed)) == pytest.approx(0.0, abs=1e-6)


def test_own_forgery_loss_without_triplets_is_a_differentiable_zero_and_checks_shapes():
    x = torch.randn(4, 8, requires_grad=True)
    emb = x / x.norm(dim=1, keepdim=True)
    out = OwnForgeryLoss()(emb, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]))  # no forgery
    out.backward()
    assert out.item() == 0.0 and x.grad is not None
    unknown = OwnForgeryLoss()(emb.detach(), torch.tensor([0, 0, 1, -4]), torch.tensor([0, 0, 1, -1]))
    assert unknown.item() == 0.0  # a forgery of an owner with no genuine item here
    with pytest.raises(ValueError, match="claimed"):
        OwnForgeryLoss()(emb, torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError):
        OwnForgeryLoss(margin=-0.1)


def test_make_loss_names():
    assert isinstance(make_loss("supcon"), SupConLoss)
    assert isinstance(make_loss("triplet"), BatchHardTripletLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("arcface")
    with pytest.raises(ValueError):
        SupConLoss(0.0)


def test_onnx_export_matches_pytorch_and_serves_dynamic_batches(tmp_path):
    net = _tiny()
    # A few training steps so that batch-norm statistics are not the identity.
    net.train()
    for _ in range(3):
        net(torch.randn(8, 3, 32, 64) * 2 + 1)
    result = export_onnx(net, tmp_path / "sim.onnx", SPEC)
    assert result.max_abs_diff < 1e-4 and result.batch_sizes_checked == (1, 3)
    assert net.training  # the caller's mode is restored

    backend = create_backend("onnxruntime", path=result.path, threads=1)
    assert backend.inputs[0].name == "images" and backend.inputs[0].shape[0] == -1
    embedder = Embedder(backend=backend, spec=SPEC, batch_size=2)
    crops = [make_specimen(o, 0) for o in range(5)]
    got = embedder.embed(crops)
    from similarity.embedder import preprocess_crops

    net.eval()
    with torch.no_grad():
        want = net(torch.from_numpy(preprocess_crops(crops, SPEC))).numpy()
    assert got.shape == (5, 8)
    np.testing.assert_allclose(got, want, atol=1e-4)
