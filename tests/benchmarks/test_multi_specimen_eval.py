"""benchmarks/multi_specimen_eval.py on a few rendered writers: the report's shape, and that the
combinations agree where they must (one specimen) and follow the verifier's formula."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.multi_specimen_eval import combine_scores, main
from similarity.verifier import OwnerNormalisation, similarity_logit


def test_combine_scores_follows_the_verifiers_combination() -> None:
    sims = [0.9, 0.6, 0.7]
    assert combine_scores(sims, 2.0, "best", 0.5, 1.0) == pytest.approx(similarity_logit(0.9))
    assert combine_scores(sims, 2.0, "mean", 0.5, 1.0) == pytest.approx(np.mean(similarity_logit(sims)))
    owner = OwnerNormalisation(alpha=0.5, typical=1.0).combine(sims, 2.0)
    assert combine_scores(sims, 2.0, "owner", 0.5, 1.0) == pytest.approx(similarity_logit(owner))


def test_a_small_run_reports_every_method_per_k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    argv = ["--kind", "signature", "--owners", "6", "--genuine", "4", "--forged", "1", "--refs", "1,2"]
    argv += ["--alphas", "0.5", "--random-owners", "2", "--cache", str(tmp_path / "cache"), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["kind"] == "signature" and report["owners"] == 6
    assert report["command"].endswith(" ".join(argv))
    k1, k2 = report["by_refs"]["1"], report["by_refs"]["2"]
    assert k1["queries"] == {"genuine": 18, "skilled": 6, "random": 12}
    assert k2["queries"] == {"genuine": 12, "skilled": 6, "random": 12}
    # One specimen: nothing to combine, every method scores alike.
    assert k1["best"] == k1["mean"] == k1["owner_a0.5"]
    for block in (k1, k2):
        for method in ("best", "mean", "owner_a0.5"):
            for impostor in ("skilled", "random"):
                assert 0.0 <= block[method][impostor]["eer"] <= 1.0
    # Rendered once: a second run reads the cache and measures the same.
    assert main(argv) == 0
    assert json.loads(out.read_text())["by_refs"] == report["by_refs"]
    capsys.readouterr()
