from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from similarity.data import (
    DataError,
    PKBatchSampler,
    ScanAugment,
    SpecimenDataset,
    SpecimenItem,
    forgery_plan,
    heldout_fraction_of,
    load_signature_dataset,
    load_specimen_folder,
    split_items,
)
from tests.similarity.conftest import make_specimen, write_specimen_tree
from vision.imageio import encode_png
from vision.types import ModelSpec


def _fake_signature_tree(root, writers=("001", "002", "003")):
    for w in writers:
        folder = root / "experiment" / w
        folder.mkdir(parents=True)
        for k in range(1, 21):
            (folder / f"{k}.png").write_bytes(encode_png(make_specimen(int(w), k)))
        (folder / "notes.txt").write_text("ignored")
    ctl = root / "control" / "1"
    ctl.mkdir(parents=True)
    for k in (1, 11):
        (ctl / f"{k}.png").write_bytes(encode_png(make_specimen(99, k)))
    return root


def test_signature_loader_makes_writer_by_name_owners(tmp_path):
    items = load_signature_dataset(_fake_signature_tree(tmp_path))
    assert len(items) == 3 * 20 + 2
    by_owner = Counter(it.owner for it in items)
    assert by_owner["sig:experiment/001#0"] == 2  # k = 1 (paper) and k = 11 (tablet)
    assert by_owner["sig:control/1#0"] == 2
    first = next(it for it in items if it.source.endswith("001/1.png"))
    assert first.group == "sig-name:0" and first.split_key == "sig:experiment/001" and first.genuine
    assert first.image().shape[2] == 3


def test_signature_loader_env_override_and_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CV_SIGNATURES_DIR", str(_fake_signature_tree(tmp_path / "sigs")))
    assert len(load_signature_dataset()) == 62
    with pytest.raises(DataError, match="not found"):
        load_signature_dataset(tmp_path / "absent")
    (tmp_path / "empty" / "experiment").mkdir(parents=True)
    with pytest.raises(DataError, match="no signature images"):
        load_signature_dataset(tmp_path / "empty")


def test_split_is_deterministic_and_writer_disjoint(tmp_path):
    items = [
        SpecimenItem(owner=f"w{w}#{n}", kind="signature", genuine=True, group=f"n{n}", split_key=f"w{w}", source="x")
        for w in range(200)
        for n in range(3)
    ]
    train, test = split_items(items, 0.2)
    _, again_test = split_items(list(reversed(items)), 0.2)
    assert {it.owner for it in test} == {it.owner for it in again_test}
    assert not {it.split_key for it in train} & {it.split_key for it in test}
    assert 0.1 < len({it.split_key for it in test}) / 200 < 0.3
    assert 0.0 <= heldout_fraction_of("anything") < 1.0
    assert split_items(items, 0.0)[1] == [] and split_items(items, 1.0)[0] == []


def test_specimen_folder_layout(tmp_path):
    root = write_specimen_tree(tmp_path / "d", range(3), genuine=2, forged=1)
    (root / "owner000" / "genuine" / "readme.txt").write_text("not an image")
    items = load_specimen_folder(root, "stamp", prefix="x/")
    assert len(items) == 9
    assert sum(not it.genuine for it in items) == 3
    assert {it.owner for it in items} == {"x/owner000", "x/owner001", "x/owner002"}
    with pytest.raises(DataError, match="does not exist"):
        load_specimen_folder(tmp_path / "nope", "stamp")
    (tmp_path / "only_forged" / "a" / "forged").mkdir(parents=True)
    with pytest.raises(DataError, match="no <owner>/genuine"):
        load_specimen_folder(tmp_path / "only_forged", "stamp")


def _items(n_groups=4, owners_per_group=5, forged=1):
    items = []
    for g in range(n_groups):
        for o in range(owners_per_group):
            owner = f"g{g}o{o}"
            for i in range(2):
                items.append(
                    SpecimenItem(
                        owner, "signature", True, f"g{g}", owner, f"{owner}/{i}", pixels=make_specimen(g * 10 + o, i)
                    )
                )
            for i in range(forged):
                items.append(
                    SpecimenItem(
                        owner,
                        "signature",
                        False,
                        f"g{g}",
                        owner,
                        f"{owner}/f{i}",
                        pixels=make_specimen(g * 10 + o, i, genuine=False),
                    )
                )
    return items


def test_pk_sampler_builds_p_by_k_batches_with_group_negatives_and_forgeries():
    items = _items()
    sampler = PKBatchSampler(items, p=8, k=2, forgeries=3, batches=20, seed=1)
    batches = list(sampler)
    assert len(batches) == 20
    for batch in batches:
        genuine = [items[i] for i in batch if items[i].genuine]
        forged = [items[i] for i in batch if not items[i].genuine]
        per_owner = Counter(it.owner for it in genuine)
        assert len(per_owner) == 8 and set(per_owner.values()) == {2}
        assert len(forged) == 3 and all(it.owner in per_owner for it in forged)
        # At least one group contributes several owners: same-name hard negatives in the batch.
        assert max(Counter(it.group for it in genuine).values()) >= 4
    assert list(PKBatchSampler(items, p=8, forgeries=3, batches=20, seed=1)) == batches
    with pytest.raises(ValueError):
        PKBatchSampler(items, p=1, batches=1)
    with pytest.raises(DataError):
        PKBatchSampler(items[:2], p=2, batches=1)


def test_dataset_labels_forgeries_as_unique_negatives_and_augments_reproducibly():
    items = _items(n_groups=1, owners_per_group=2)
    spec = ModelSpec(name="t", version="1", input_size=(32, 64), pad_value=255)
    ds = SpecimenDataset(items, spec, augment=ScanAugment(), seed=3)
    labels = [ds[i][1] for i in range(len(ds))]
    claimed = [ds[i][2] for i in range(len(ds))]
    # A forgery is presented as the owner it imitates; a genuine item as itself.
    assert claimed == [ds.owner_index[it.owner] for it in items]
    assert all(c == lab for c, lab, it in zip(claimed, labels, items, strict=True) if it.genuine)
    genuine_labels = [lab for lab, it in zip(labels, items, strict=True) if it.genuine]
    forged_labels = [lab for lab, it in zip(labels, items, strict=True) if not it.genuine]
    assert sorted(set(genuine_labels)) == [0, 1]
    assert len(set(forged_labels)) == len(forged_labels) and all(lab < 0 for lab in forged_labels)
    x, _, _ = ds[0]
    assert x.shape == (3, 32, 64) and x.dtype.is_floating_point


def test_scan_augment_keeps_a_valid_image_and_is_seeded():
    aug = ScanAugment()
    img = make_specimen(5, 0)
    a = aug(img, random.Random(7))
    b = aug(img, random.Random(7))
    np.testing.assert_array_equal(a, b)
    for seed in range(30):
        out = aug(img, random.Random(seed))
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and min(out.shape[:2]) >= 8
    assert ScanAugment(strength=0.0)(img, random.Random(0)) is img
    with pytest.raises(ValueError):
        ScanAugment(strength=2.0)


def test_forgery_plan_covers_every_kind_across_owners_with_fewer_forgeries_than_kinds():
    kinds = ("a", "b", "c", "d", "e")
    plans = {f"AUTH-{i}": forgery_plan(f"AUTH-{i}", 3, kinds) for i in range(60)}
    assert set().union(*plans.values()) == set(kinds)
    for plan in plans.values():  # consecutive, distinct kinds
        assert len(set(plan)) == 3 and (kinds.index(plan[1]) - kinds.index(plan[0])) % 5 == 1
    assert forgery_plan("AUTH-7", 3, kinds) == plans["AUTH-7"]  # a function of the owner only
    assert forgery_plan("W-1", 2, ("skilled",)) == ["skilled", "skilled"]
    assert forgery_plan("W-1", 0, kinds) == []


def test_generated_specimens_are_cached_and_keyed_per_owner(tmp_path):
    pytest.importorskip("detectors.synth.doc_specimens")
    from similarity.data import render_specimen_items

    args = {"per_owner": 2, "forgeries": 1, "seed": 5, "dpi": 100.0, "cache_dir": tmp_path / "cache"}
    first = render_specimen_items("signature", ["T-1", "T-2"], **args)
    assert len(first) == 6 and sum(not it.genuine for it in first) == 2
    assert {it.owner for it in first} == {"signature:T-1", "signature:T-2"}
    assert all(it.split_key == it.owner for it in first)
    again = render_specimen_items("signature", ["T-1", "T-2"], **args)  # read back from the cache
    assert [it.owner for it in again] == [it.owner for it in first]
    assert [it.forgery for it in again] == [it.forgery for it in first] == ["", "", "skilled"] * 2
    np.testing.assert_array_equal(again[0].image(), first[0].image())
    # A cache written by another layout is cleared before rendering: no stale crop is read back.
    cache = tmp_path / "cache"
    (cache / "params.json").write_text('{"layout": 1}')
    stale = cache / "T-1" / "forged" / "09-photocopy.png"
    stale.write_bytes((cache / "T-1" / "forged" / "02-skilled.png").read_bytes())
    rerendered = render_specimen_items("signature", ["T-1", "T-2"], **args)
    assert len(rerendered) == 6 and not stale.exists()
    assert len(render_specimen_items("signature", ["T-1", "T-2"], **args)) == 6
