"""The synthetic trace generator: calibrated accuracies, correlated outcomes, arrivals, informative text."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sim.config import LogisticPredictor, SynthTrace
from sim.policies.predictors import build_predictor, predict, train
from sim.trace.synth import synth_frame
from sim.trace.format import from_frame

GROUPS = {
    "easy": {"difficulty_mean": -0.5, "accuracy": {"s": 0.5, "l": 0.8}, "energy_j": {"s": 10.0, "l": 100.0}},
    "hard": {"difficulty_mean": 0.7, "accuracy": {"s": 0.2, "l": 0.45}, "energy_j": {"s": 12.0, "l": 120.0}},
}


def spec(**kw) -> SynthTrace:
    return SynthTrace.model_validate({"requests": 20000, "groups": GROUPS, **kw})


def test_accuracies_are_calibrated_per_group_and_labels_follow():
    df, models = synth_frame(spec(), seed=3)
    for g, targets in GROUPS.items():
        sub = df.filter(pl.col("group") == g)
        assert sub.height == 10000  # equal weights: an exact split
        for m in models:
            assert sub[f"p_true__{m}"].mean() == pytest.approx(targets["accuracy"][m], abs=1e-9)
            # labels are Bernoulli(p_true): their mean is within 4 standard errors
            assert abs(sub[f"sat__{m}"].mean() - targets["accuracy"][m]) < 4 * 0.5 / np.sqrt(sub.height)


def test_outcomes_are_correlated_across_models():
    df, _ = synth_frame(spec(), seed=3)
    for g in GROUPS:  # within a group one difficulty drives every model: p_true is exactly co-monotone
        sub = df.filter(pl.col("group") == g)
        order = np.argsort(sub["p_true__s"].to_numpy(), kind="stable")
        assert np.all(np.diff(sub["p_true__l"].to_numpy()[order]) >= 0)
    assert np.corrcoef(df["sat__s"], df["sat__l"])[0, 1] > 0.1  # so the labels are correlated too (0 if independent)


def test_same_seed_same_trace():
    a, _ = synth_frame(spec(), seed=5)
    b, _ = synth_frame(spec(), seed=5)
    c, _ = synth_frame(spec(), seed=6)
    assert a.equals(b) and not a.equals(c)


@pytest.mark.parametrize("cv", [0.5, 1.0, 3.0])
def test_gamma_arrivals_have_the_rate_and_cv(cv):
    df, _ = synth_frame(spec(arrivals={"process": "gamma", "rate": 4.0, "cv": cv}), seed=1)
    gaps = np.diff(np.concatenate([[0.0], df["arrival_s"].to_numpy()]))
    assert 1 / gaps.mean() == pytest.approx(4.0, rel=5 * cv / np.sqrt(len(gaps)) + 0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_arrivals_from_a_file(tmp_path):
    times = np.cumsum(np.full(20000, 0.25)) + 100.0
    pl.DataFrame({"ts": times}).write_csv(tmp_path / "a.csv")
    df, _ = synth_frame(spec(arrivals={"process": "file", "path": str(tmp_path / "a.csv"), "column": "ts",
                                       "time_scale": 2.0}), seed=1)
    np.testing.assert_allclose(df["arrival_s"].to_numpy(), (times - times[0]) * 2.0)


def test_sequential_mix_keeps_groups_in_order():
    df, _ = synth_frame(spec(mix="sequential"), seed=1)
    g = df["group"].to_list()
    assert g[:10000] == ["easy"] * 10000 and g[10000:] == ["hard"] * 10000


def _learned_predictions(trace, n_train=4000, **spec_args):
    spec_args = spec_args or {"group_features": False}
    st = build_predictor(LogisticPredictor(kind="logistic", **spec_args), trace.features, trace.m, None, 0, "t")
    mask = np.ones(trace.m, np.bool_)
    for t in range(n_train):
        train(t, trace.outcomes.sat[t], mask, st)
    out, preds = np.zeros(trace.m), []
    for t in range(n_train, trace.n):
        predict(t, out, st)
        preds.append(out[1])
    return np.array(preds)


def _learned_correlation(trace, n_train=4000, **spec_args):
    preds = _learned_predictions(trace, n_train, **spec_args)
    return np.corrcoef(preds, trace.outcomes.p_true[n_train:, 1])[0, 1]


def test_text_carries_learnable_information():
    df, models = synth_frame(spec(), seed=2)
    assert _learned_correlation(from_frame(df, models)) > 0.6
    uninformative, _ = synth_frame(spec(text={"informative": 0.0}), seed=2)
    assert abs(_learned_correlation(from_frame(uninformative, models))) < 0.1


def test_a_supplied_embedding_replaces_the_text():
    df, models = synth_frame(spec(requests=6000), seed=2)
    d = df["p_true__l"].to_numpy()
    emb = np.column_stack([d, 1 - d, np.ones_like(d)])  # an embedding that knows the difficulty
    trace = from_frame(df.with_columns(pl.Series("embedding", emb.tolist())), models)
    assert trace.features.feature_dim == 3
    assert _learned_correlation(trace) > 0.9


def _text_and_embedding_trace():
    df, models = synth_frame(spec(requests=6000), seed=2)
    d = df["p_true__l"].to_numpy()
    emb = np.column_stack([d, 1 - d, np.ones_like(d)])  # an embedding that knows the difficulty
    return from_frame(df.with_columns(pl.Series("embedding", emb.tolist())), models)


def test_logistic_features_pick_text_group_or_embedding():
    """`features` chooses what the logistic regression reads, even when the trace has both text and an embedding."""
    from sim.trace.format import HASH_DIM

    trace = _text_and_embedding_trace()
    by_embedding = _learned_correlation(trace, features="embedding")
    by_text = _learned_correlation(trace, features="text")
    assert by_embedding > 0.9 and 0.3 < by_text < by_embedding - 0.05  # the text is informative, but less so
    assert build_predictor(LogisticPredictor(kind="logistic", features="text"), trace.features, trace.m, None, 0,
                           "t").feature_dim == HASH_DIM
    # group only: one prediction per group, whatever the request's text or embedding
    preds = _learned_predictions(trace, features="group")
    groups = trace.features.groups[4000:]
    for g in np.unique(groups):
        assert np.ptp(preds[groups == g]) == 0.0
    assert len(np.unique(preds)) == len(np.unique(groups))
    # text+group and embedding+group add the group one-hot to the same rows
    assert _learned_correlation(trace, features="text+group") != by_text


def test_logistic_features_auto_is_the_old_default():
    """`auto` (the default) reads what the trace has, as before; on a text trace it equals text+group."""
    df, models = synth_frame(spec(requests=6000), seed=2)
    trace = from_frame(df, models)
    auto = _learned_predictions(trace, group_features=True)
    assert np.array_equal(auto, _learned_predictions(trace, features="text+group"))
    assert not np.array_equal(auto, _learned_predictions(trace, features="text"))


def test_logistic_features_errors(small_raw):
    from sim.config import validate_scenario
    from sim.errors import UserError

    df, models = synth_frame(spec(requests=200, text={"tokens": 0}), seed=2)
    no_text = from_frame(df.drop("text") if "text" in df.columns else df, models)
    for choice, column in (("embedding", "'embedding'"), ("text", "'text'")):
        with pytest.raises(UserError, match=f"features '{choice}' needs .*{column}"):
            build_predictor(LogisticPredictor(kind="logistic", features=choice), no_text.features, 2, None, 0, "p")
    with pytest.raises(ValueError, match="leaves out the group, but group_features is True"):
        LogisticPredictor(kind="logistic", features="text", group_features=True)
    resolved = LogisticPredictor(kind="logistic", features="group").model_dump(mode="json")
    assert resolved["group_features"] is True and LogisticPredictor(**resolved).features == "group"
    small_raw["policies"] = [{"kind": "messplus", "predictor": {"kind": "logistic", "features": "txt"}}]
    with pytest.raises(UserError, match="features") as e:
        validate_scenario(small_raw, "s")
    assert "\n" not in str(e.value)
