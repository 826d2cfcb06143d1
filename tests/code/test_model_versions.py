"""The served model and its shadow swap between batches; reasons from the booster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deployments.model.versions import ModelVersions, onnx_loader
from features.spec import FEATURE_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_versions_swap_between_batches_without_splitting_one() -> None:
    holder = ModelVersions(onnx_loader())
    v1 = holder.load("models/default")  # as serve_config.yaml names it: from the repo root
    assert holder.model_dir == REPO / "models" / "default"
    x = np.zeros((3, len(FEATURE_NAMES)))
    out = holder.score_many([x[:1], x[1:]])
    assert [len(o.scores) for o in out] == [1, 2] and {o.version for o in out} == {v1}
    with pytest.raises(Exception, match="not a model directory"):
        holder.load(REPO / "models" / "missing")
    assert holder.score_many([x])[0].version == v1  # a failed load leaves the old model serving
    # A shadow scores the same rows beside the live model; the live answer is unchanged.
    holder.load(REPO / "models" / "default", shadow_dir=REPO / "models" / "default")
    both = holder.score_many([x])[0]
    assert both.shadow_version == v1 and np.array_equal(both.shadow_scores, both.scores)
    contribs, version = holder.explain(x[:2])
    assert contribs.shape == (2, len(FEATURE_NAMES)) and version == v1


def test_exact_and_approximate_reasons_both_add_up_to_the_score() -> None:
    """Exact TreeSHAP and Saabas attribution both decompose the same log-odds (with the
    bias); they are different decompositions, which is why `reasons: exact` is the default."""
    from models.explain import Explainer
    from models.onnx import load_model

    x = np.random.default_rng(3).gamma(2.0, 20.0, size=(200, len(FEATURE_NAMES)))
    explainer = Explainer(REPO / "models" / "default")
    exact, approx = explainer.contributions(x), explainer.contributions(x, approx=True)
    assert exact.shape == approx.shape == (200, len(FEATURE_NAMES))
    assert np.allclose(exact.sum(1) - approx.sum(1), 0.0, atol=1e-4)  # same bias, same margin
    assert not np.allclose(exact, approx)
    p = load_model(REPO / "models" / "default").score(x).astype(np.float64)
    # A float32 probability within ~1e-3 of 0 or 1 no longer carries its log-odds to 5e-3.
    usable = (p > 1e-3) & (p < 1 - 1e-3)
    assert usable.sum() >= 25
    margin = np.log(p[usable] / (1 - p[usable]))
    bias = margin - exact[usable].sum(1)
    assert np.allclose(bias, bias[0], atol=5e-3)  # contributions + one constant = log-odds
