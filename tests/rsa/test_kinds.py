import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from brainprobe.rsa import align_kinds, kind_difference, kind_similarity, layer_trend, rdm


def _study(n=30, n_units=200, ai_noise=0.5, seed=0, shuffle=True):
    """RE images with structure; AI = RE + small noise (same representation); AN independent."""
    rng = np.random.default_rng(seed)
    kinds = ["RE", "AN", "AI"]
    table = pd.DataFrame({
        "image_id": [f"{k}_{i}" for k in kinds for i in range(n)],
        "kind": [k for k in kinds for _ in range(n)],
        "source_id": [f"RE_{i}" for _ in kinds for i in range(n)],
    })
    base = rng.normal(size=(n, n_units))
    patterns = np.concatenate([base, rng.normal(size=(n, n_units)), base + ai_noise * rng.normal(size=(n, n_units))])
    if shuffle:
        order = rng.permutation(len(table))
        table, patterns = table.iloc[order].reset_index(drop=True), patterns[order]
    return table, patterns


def test_planted_structure_is_found_and_tested():
    table, patterns = _study()
    result = kind_similarity({"roi": patterns}, table, n_perm=500, n_boot=200, seed=1)
    ai = result.set_index("pair").loc["RE-AI"]
    an = result.set_index("pair").loc["RE-AN"]
    assert ai.similarity > 0.5 and ai.p_perm == pytest.approx(1 / 501)
    assert abs(an.similarity) < 0.2 and an.p_perm > 0.05
    assert ai.ci95_low <= ai.ci68_low <= ai.similarity <= ai.ci68_high <= ai.ci95_high
    assert set(result.columns) >= {"roi", "pair", "similarity", "n_images", "n_units", "p_perm", "n_boot"}
    assert (result["n_images"] == 30).all()


def test_similarity_equals_direct_computation_regardless_of_row_order():
    table, patterns = _study(shuffle=True)
    result = kind_similarity(patterns, table, n_perm=0, n_boot=0)
    by_kind = {k: patterns[(table["kind"] == k).to_numpy()][np.argsort(table.loc[table["kind"] == k, "source_id"].to_numpy())]
               for k in ("RE", "AN", "AI")}
    for other in ("AN", "AI"):
        expected = spearmanr(rdm(by_kind["RE"]), rdm(by_kind[other]))[0]
        got = result.set_index("pair").loc[f"RE-{other}", "similarity"]
        assert got == pytest.approx(expected, abs=1e-12)


def test_same_seed_same_table():
    table, patterns = _study()
    first = kind_similarity({"a": patterns}, table, n_perm=100, n_boot=50, seed=3)
    second = kind_similarity({"a": patterns}, table, n_perm=100, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(first, second)


def test_alignment_errors_and_warnings():
    table, patterns = _study(shuffle=False)
    with pytest.raises(ValueError, match="no images of kind 'XX'"):
        align_kinds(table, "RE", ("XX",))
    doubled = pd.concat([table, table.iloc[[0]].assign(image_id="extra")], ignore_index=True)
    with pytest.raises(ValueError, match="average repeated presentations"):
        align_kinds(doubled)
    partial = table.drop(index=table.index[(table["kind"] == "AN")][:2])
    with pytest.warns(UserWarning, match="2 RE images lack a partner"):
        sources, rows = align_kinds(partial)
    assert len(sources) == 28
    with pytest.raises(ValueError, match="one row per table row"):
        kind_similarity({"x": patterns[:-1]}, table, n_perm=0, n_boot=0)


def test_image_bootstrap_difference_drops_duplicate_pairs():
    table, patterns = _study(n=20, shuffle=False)
    result = kind_difference({"roi": patterns}, table, n_boot=300, seed=0).iloc[0]
    # two-sided by default: twice the smaller tail; each side reported
    assert result.difference > 0.4 and result.p_boot == pytest.approx(2 / 301)
    assert result.p_greater == pytest.approx(1 / 301) and result.p_less == pytest.approx(1.0)
    assert result.direction == "RE-AI > RE-AN" and result.alternative == "two-sided"
    assert result.ci95_low > 0
    # two draws coincide with probability 1/20, so 190 * (1 - 1/20) = 180.5 pairs are kept on average
    assert result.mean_pairs_used == pytest.approx(180.5, abs=1.0)


def test_image_bootstrap_matches_rebuilding_each_resample():
    """One resample by hand: duplicate the drawn images, rebuild RDMs, drop same-source pairs."""
    table, patterns = _study(n=12, shuffle=False)
    result = kind_difference({"roi": patterns}, table, n_boot=1, seed=5)
    draw = np.random.default_rng(5).integers(0, 12, size=(1, 12))[0]
    rows = {k: np.flatnonzero(table["kind"].to_numpy() == k) for k in ("RE", "AN", "AI")}
    i, j = np.triu_indices(12, 1)
    keep = draw[i] != draw[j]
    # rounding removes float noise between copies of one image, which would break their ties
    rebuilt = {k: np.round(_rdm_allowing_duplicates(patterns[rows[k]][draw]), 12) for k in rows}
    ai = spearmanr(rebuilt["RE"][keep], rebuilt["AI"][keep])[0]
    an = spearmanr(rebuilt["RE"][keep], rebuilt["AN"][keep])[0]
    samples_mean = (result.ci95_low.iloc[0] + result.ci95_high.iloc[0]) / 2
    assert samples_mean == pytest.approx(ai - an, abs=1e-10)


def _rdm_allowing_duplicates(x):
    centred = x - x.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    square = 1 - centred @ centred.T
    return square[np.triu_indices(len(x), 1)]


def test_layer_trend_detects_a_rising_pair():
    rows = []
    for k, layer in enumerate(["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]):
        rows.append({"layer": layer, "pair": "RE-AN", "similarity": 0.05 * k + 0.01 * (k % 2)})
        rows.append({"layer": layer, "pair": "RE-AI", "similarity": 0.8 - 0.02 * k})
    trends = layer_trend(pd.DataFrame(rows)).set_index("pair")
    assert trends.loc["RE-AN", "trend"] == "increasing" and trends.loc["RE-AN", "p_method"] == "exact"
    assert trends.loc["RE-AN", "p"] == trends.loc["RE-AN", "p_exact"] < trends.loc["RE-AN", "p_normal"]
    normal = layer_trend(pd.DataFrame(rows), exact=False).set_index("pair")
    assert normal.loc["RE-AN", "p_method"] == "normal" and normal.loc["RE-AN", "p"] == normal.loc["RE-AN", "p_normal"]
    assert trends.loc["RE-AI", "trend"] == "decreasing"
    assert trends.loc["RE-AN", "n"] == 8


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_unit_bootstrap_by_weights_equals_rdms_of_the_drawn_units(metric):
    """The Gram-weight bootstrap must give exactly the similarity of RDMs recomputed on each draw."""
    from brainprobe._internal import correlate_rows
    from brainprobe.rsa._kinds import _unit_bootstrap

    rng = np.random.default_rng(4)
    values = np.abs(rng.normal(size=(30, 700))) + 3.0  # positive, ReLU-like: centring matters
    rows = {"RE": np.arange(10), "AN": np.arange(10, 20), "AI": np.arange(20, 30)}
    fast = _unit_bootstrap(values, rows, "RE", ["AN", "AI"], metric, "spearman", 7, 0.8,
                                np.random.default_rng(9), "cpu")
    keys = np.random.default_rng(9).random((7, 700))  # the same draws: the 560 smallest keys
    for b in range(7):
        chosen = np.argsort(keys[b])[:560]
        expected = [correlate_rows(rdm(values[rows["RE"]][:, chosen], metric), rdm(values[rows[o]][:, chosen], metric),
                                   "spearman") for o in ("AN", "AI")]
        np.testing.assert_allclose(fast[b], expected, atol=1e-10)


@pytest.mark.parametrize("tile", [64, 1 << 21])
@pytest.mark.parametrize("metric", ["correlation", "euclidean"])
def test_unit_subsamples_one_at_a_time_in_row_tiles_equal_rdms_of_the_drawn_units(metric, tile, monkeypatch):
    """The per-resample path (large RDMs: tiles of rows written in condensed order, each RDM
    ranked once, `ReferenceCorrelation`) gives the similarity of RDMs recomputed on each draw, as
    the grouped path of small RDMs does, on the same draws."""
    from brainprobe._internal import correlate_rows
    from brainprobe.rsa import _kinds

    rng = np.random.default_rng(5)
    values = np.abs(rng.normal(size=(45, 50))) + 3.0  # positive, ReLU-like: centring matters
    rows = {"RE": np.arange(15), "AN": np.arange(15, 30), "AI": np.arange(30, 45)}
    grouped = _kinds._unit_bootstrap(values, rows, "RE", ["AN", "AI"], metric, "spearman", 6, 0.8,
                                     np.random.default_rng(2), "cpu")
    monkeypatch.setattr(_kinds, "_TILE_ELEMENTS", tile)  # 64: one resample at a time, 4 rows per tile
    single = _kinds._unit_bootstrap(values, rows, "RE", ["AN", "AI"], metric, "spearman", 6, 0.8,
                                    np.random.default_rng(2), "cpu")
    keys = np.random.default_rng(2).random((6, 50))
    for b in range(6):
        chosen = np.argsort(keys[b])[:40]
        expected = [correlate_rows(rdm(values[rows["RE"]][:, chosen], metric), rdm(values[rows[o]][:, chosen], metric),
                                   "spearman") for o in ("AN", "AI")]
        np.testing.assert_allclose(single[b], expected, atol=1e-10)
        np.testing.assert_allclose(grouped[b], expected, atol=1e-10)


def test_kind_similarity_refuses_a_metric_it_cannot_bootstrap():
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in ("RE", "AN", "AI") for i in range(4)],
                          "kind": [k for k in ("RE", "AN", "AI") for _ in range(4)],
                          "source_id": [f"RE{i}" for _ in range(3) for i in range(4)]})
    with pytest.raises(ValueError, match="crossnobis needs runs"):
        kind_similarity(np.random.default_rng(0).normal(size=(12, 20)), table, metric="crossnobis")


def test_a_planted_reversal_is_significant_with_its_sign():
    """The study's layer 8: RE-AN above RE-AI. A two-sided test must find it, with its direction."""
    table, patterns = _study(n=20, shuffle=False)
    an, ai = (table["kind"] == "AN").to_numpy(), (table["kind"] == "AI").to_numpy()
    patterns[an], patterns[ai] = patterns[ai].copy(), patterns[an].copy()  # AN now follows RE, AI does not
    result = kind_difference({"fc8": patterns}, table, n_boot=300, seed=0).iloc[0]
    assert result.difference < -0.4 and result.direction == "RE-AI < RE-AN"
    assert result.p_boot == pytest.approx(2 / 301) and result.p_less == pytest.approx(1 / 301)
    assert result.p_greater == pytest.approx(1.0)  # the old one-sided default could only say 1.0
    assert result.ci95_high < 0


def test_four_images_enumerate_every_relabeling():
    """4 images allow 24 relabelings: p can never be below 1/24, and it is exact."""
    table, patterns = _study(n=4, shuffle=False)
    result = kind_similarity({"roi": patterns}, table, n_perm=1000, n_boot=0, seed=0).set_index("pair")
    assert (result["n_perm"] == 24).all() and result["p_exact"].all()
    assert (result["p_perm"] >= 1 / 24 - 1e-15).all()
    assert result.loc["RE-AI", "p_perm"] * 24 == pytest.approx(round(result.loc["RE-AI", "p_perm"] * 24))


def test_intervals_contain_their_estimate():
    """Subsample intervals are centred on the full-data similarity (the raw 80% percentiles are not)."""
    table, patterns = _study(n=12, n_units=60, ai_noise=2.0, seed=3)
    result = kind_similarity({"roi": patterns}, table, n_perm=0, n_boot=300, seed=0)
    for level in ("ci68", "ci95"):
        assert (result[f"{level}_low"] <= result["similarity"]).all()
        assert (result["similarity"] <= result[f"{level}_high"]).all()
    assert (result["ci95_high"] - result["ci95_low"] > result["ci68_high"] - result["ci68_low"]).all()
    with pytest.raises(ValueError, match="boot_fraction"):
        kind_similarity({"roi": patterns}, table, n_perm=0, n_boot=10, boot_fraction=1.0)


def test_the_unit_sets_column_is_named_as_in_the_study_tables():
    from brainprobe.models import Activations

    table, patterns = _study()
    kwargs = {"n_perm": 0, "n_boot": 0, "seed": 0}
    assert "roi" in kind_similarity({"V1": patterns}, table, **kwargs)  # brain patterns: brain_rsa's column
    layers = kind_similarity(Activations({"conv1": patterns}), table, **kwargs)  # a network's: network_rsa's
    assert "layer" in layers and "roi" not in layers
    assert "layer" in kind_similarity({"conv1": patterns}, table, unit="layer", **kwargs)
    with pytest.raises(ValueError, match=r"unit: expected one of \('layer', 'roi'\)"):
        kind_similarity({"V1": patterns}, table, unit="unit_set", **kwargs)
    with pytest.raises(ValueError, match="expected one column naming the unit sets"):
        layer_trend(layers.assign(roi="V1"))
