from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pytest

from similarity.registry import (
    RegistryError,
    SpecimenRegistry,
    StaleEmbeddingsError,
    UnknownOwnerError,
    UnknownSpecimenError,
    open_registry,
)
from tests.similarity.conftest import make_specimen


class FakeEmbedder:
    """A fixed random projection of an 8 x 16 grey thumbnail; each version projects differently."""

    def __init__(self, version: str, dim: int = 16) -> None:
        self._version = version
        seed = sum(version.encode())
        self.projection = np.random.default_rng(seed).normal(size=(8 * 16, dim)).astype(np.float32)
        self.calls = 0

    @property
    def version(self) -> str:
        return self._version

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        import cv2

        self.calls += 1
        rows = []
        for c in crops:
            grey = cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (16, 8), interpolation=cv2.INTER_AREA)
            v = (255.0 - grey.astype(np.float32)).reshape(-1) @ self.projection
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(crops), -1)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = os.environ.get("CV_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CV_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS similarity_specimens"))
    engine.dispose()
    return url


def _register(
    registry: SpecimenRegistry, embedder: FakeEmbedder, owners: range, per_owner: int, kind: str = "signature"
):
    ids = {}
    for o in owners:
        for i in range(per_owner):
            img = make_specimen(o, i)
            info = registry.add(owner=f"P{o}", kind=kind, image=img, embedding=embedder.embed([img])[0], label=f"#{i}")
            ids[info.id] = (o, i)
    return ids


def test_verify_ranks_the_claimed_owners_specimens(db_url):
    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(db_url, model_version="v1")
    ids = _register(reg, emb, range(5), per_owner=3)
    query = emb.embed([make_specimen(2, 7)])[0]
    hits = reg.verify(query, "P2", "signature")
    assert len(hits) == 3 and all(h.owner == "P2" for h in hits)
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)
    assert {ids[h.specimen_id][0] for h in hits} == {2}
    assert hits[0].cosine == pytest.approx(reg.similarity(query, hits[0].specimen_id), abs=1e-6)
    reg.close()


def test_identify_returns_best_owners_first(db_url):
    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(db_url, model_version="v1")
    _register(reg, emb, range(8), per_owner=2)
    query = emb.embed([make_specimen(5, 9)])[0]
    hits = reg.identify(query, "signature", top_k=3)
    assert len(hits) == 3
    assert hits[0].owner == "P5" and hits[0].n_specimens == 2
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)
    assert len({h.owner for h in hits}) == 3
    # Best per owner equals the brute-force maximum over that owner's specimens.
    for h in hits:
        assert h.cosine == pytest.approx(max(s.cosine for s in reg.verify(query, h.owner, "signature")), abs=1e-6)
    assert reg.identify(query, "stamp") == []
    assert len(reg.identify(query, "signature", top_k=100)) == 8
    reg.close()


def test_registry_survives_a_restart(db_url):
    url = db_url
    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(url, model_version="v1")
    _register(reg, emb, range(4), per_owner=2)
    query = emb.embed([make_specimen(1, 5)])[0]
    before = reg.identify(query, "signature", top_k=4)
    image = make_specimen(3, 0)
    sid = next(s.id for s in reg.specimens(owner="P3") if s.label == "#0")
    reg.close()

    reopened = SpecimenRegistry.from_url(url, model_version="v1")
    assert len(reopened) == 8 and reopened.stale_count == 0
    after = reopened.identify(query, "signature", top_k=4)
    assert [(h.owner, h.specimen_id) for h in after] == [(h.owner, h.specimen_id) for h in before]
    assert [h.cosine for h in after] == pytest.approx([h.cosine for h in before], abs=1e-6)
    np.testing.assert_array_equal(reopened.image(sid), image)  # PNG keeps the pixels exactly
    info = reopened.get(sid)
    assert info.owner == "P3" and info.kind == "signature" and info.model_version == "v1"
    assert info.created_at is not None and info.updated_at >= info.created_at
    reopened.close()


def test_a_new_model_version_forces_reembedding(db_url):
    url = db_url
    old, new = FakeEmbedder("v1"), FakeEmbedder("v2")
    reg = SpecimenRegistry.from_url(url, model_version="v1")
    _register(reg, old, range(3), per_owner=2)
    reg.close()

    stale = SpecimenRegistry.from_url(url, model_version="v2")
    assert stale.stale_count == 6
    query = new.embed([make_specimen(0, 4)])[0]
    with pytest.raises(StaleEmbeddingsError, match="re-embed"):
        stale.verify(query, "P0", "signature")
    with pytest.raises(StaleEmbeddingsError):
        stale.identify(query, "signature")

    assert stale.reembed(new) == 6
    assert stale.stale_count == 0 and stale.model_version == "v2"
    assert {s.model_version for s in stale.specimens()} == {"v2"}
    hits = stale.verify(query, "P0", "signature")
    # Stored embeddings are now exactly what the new model makes of the kept images.
    for h in hits:
        expected = new.embed([stale.image(h.specimen_id)])[0]
        assert h.cosine == pytest.approx(float(expected @ query), abs=1e-5)
    stale.close()

    # open_registry re-embeds on opening.
    third = FakeEmbedder("v3")
    reg3 = open_registry(url, third)
    assert reg3.model_version == "v3" and reg3.stale_count == 0
    assert third.calls >= 1 and len(reg3.owners("signature")) == 3
    reg3.close()


def test_unknown_owner_and_specimen_raise_typed_errors(db_url):
    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(db_url, model_version="v1")
    _register(reg, emb, range(2), per_owner=1, kind="stamp")
    q = emb.embed([make_specimen(0, 1)])[0]
    with pytest.raises(UnknownOwnerError, match="no signature specimen is registered for owner 'P0'"):
        reg.verify(q, "P0", "signature")  # P0 has stamps only
    with pytest.raises(UnknownOwnerError):
        reg.verify(q, "nobody", "stamp")
    for call in (reg.get, reg.image, reg.delete, lambda sid: reg.similarity(q, sid)):
        with pytest.raises(UnknownSpecimenError, match="no registered specimen has id 'missing'"):
            call("missing")
    reg.close()


def test_delete_keeps_the_search_index_in_sync(db_url):
    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(db_url, model_version="v1")
    ids = _register(reg, emb, range(12), per_owner=3)
    rng = np.random.default_rng(0)
    removed = set(rng.choice(sorted(ids), size=20, replace=False).tolist())
    for sid in removed:
        reg.delete(sid)
    # Every specimen of P0 removed -> P0 unknown; the index equals a fresh load from the database.
    for sid in [s for s, (o, _) in ids.items() if o == 0 and s not in removed]:
        reg.delete(sid)
    with pytest.raises(UnknownOwnerError):
        reg.verify(emb.embed([make_specimen(0, 0)])[0], "P0", "signature")
    query = emb.embed([make_specimen(4, 6)])[0]
    live = reg.identify(query, "signature", top_k=20)
    fresh = SpecimenRegistry.from_url(db_url, model_version="v1")
    assert [(h.owner, h.specimen_id, h.n_specimens) for h in live] == [
        (h.owner, h.specimen_id, h.n_specimens) for h in fresh.identify(query, "signature", top_k=20)
    ]
    assert "P0" not in reg.owners("signature")
    reg.close()
    fresh.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "fingerprint"}, "kind must be one of"),
        ({"owner": ""}, "owner must be"),
        ({"embedding": np.zeros(16, np.float32)}, "finite and non-zero"),
        ({"embedding": np.full(16, np.nan, np.float32)}, "finite and non-zero"),
        ({"embedding": np.ones((2, 8), np.float32)}, "1-D vector"),
        ({"embedding": np.ones(7, np.float32)}, "dimensions"),
    ],
)
def test_add_rejects_bad_input(tmp_path, kwargs, message):
    reg = SpecimenRegistry.from_url(f"sqlite:///{tmp_path / 'r.db'}", model_version="v1")
    reg.add(owner="A", kind="signature", image=make_specimen(0, 0), embedding=np.ones(16, np.float32))
    args = {"owner": "B", "kind": "signature", "image": make_specimen(1, 0), "embedding": np.ones(16, np.float32)}
    with pytest.raises(RegistryError, match=message):
        reg.add(**(args | kwargs))
    assert len(reg) == 1
    reg.close()


def test_searches_validate_their_input(tmp_path):
    reg = SpecimenRegistry.from_url(f"sqlite:///{tmp_path / 'r.db'}", model_version="v1")
    reg.add(owner="A", kind="stamp", image=make_specimen(0, 0), embedding=np.ones(16, np.float32))
    with pytest.raises(RegistryError, match="top_k"):
        reg.identify(np.ones(16), "stamp", top_k=0)
    with pytest.raises(RegistryError, match="dimensions"):
        reg.identify(np.ones(8), "stamp")
    with pytest.raises(RegistryError, match="kind"):
        reg.owners("seal")
    with pytest.raises(RegistryError):
        SpecimenRegistry.from_url(f"sqlite:///{tmp_path / 'r.db'}", model_version="")
    reg.close()


def test_add_many_is_all_or_nothing(db_url):
    from similarity.registry import NewSpecimen

    emb = FakeEmbedder("v1")
    reg = SpecimenRegistry.from_url(db_url, model_version="v1")
    batch = [
        NewSpecimen(
            owner=f"A{o}", kind="stamp", image=make_specimen(o, 0), embedding=emb.embed([make_specimen(o, 0)])[0]
        )
        for o in range(5)
    ]
    bad = [*batch, NewSpecimen(owner="B", kind="stamp", image=make_specimen(9, 0), embedding=np.ones(3, np.float32))]
    with pytest.raises(RegistryError, match="dimensions"):
        reg.add_many(bad)
    assert len(reg) == 0 and reg.owners("stamp") == []
    infos = reg.add_many(batch)
    assert [i.owner for i in infos] == [f"A{o}" for o in range(5)] and len(reg) == 5
    assert reg.identify(batch[3].embedding, "stamp", top_k=1)[0].owner == "A3"
    reg.close()


def test_verify_read_only_embeds_stale_specimens_in_memory_without_writing(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    old, new = FakeEmbedder("v1"), FakeEmbedder("v2")
    reg = SpecimenRegistry.from_url(url, model_version="v1")
    _register(reg, old, range(2), per_owner=2)
    reg.close()
    stale = SpecimenRegistry.from_url(url, model_version="v2")
    query = new.embed([make_specimen(1, 3)])[0]
    hits = stale.verify_read_only(query, "P1", "signature", new)
    assert len(hits) == 2 and hits[0].cosine >= hits[1].cosine
    assert hits[0].cosine == pytest.approx(float(new.embed([stale.image(hits[0].specimen_id)])[0] @ query), abs=1e-5)
    assert stale.stale_count == 4 and {s.model_version for s in stale.specimens()} == {"v1"}
    with pytest.raises(UnknownOwnerError):
        stale.verify_read_only(query, "P7", "signature", new)
    with pytest.raises(RegistryError, match="opened for 'v2'"):
        stale.verify_read_only(query, "P1", "signature", old)
    stale.close()
