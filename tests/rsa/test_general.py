"""General design: RDMs against candidate RDMs, checked against rsatoolbox on the 92-image human-IT data."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import squareform

from brainprobe.rsa import (
    category_rdm,
    compare_to_candidates,
    from_rsatoolbox,
    group_comparison,
    to_rsatoolbox,
)
from brainprobe.stats import image_bootstrap_rdm_correlations

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "kriegeskorte92.npz"
if not DATA.exists():
    DATA = Path("/work/shared/data/kriegeskorte92.npz")


@pytest.fixture(scope="module")
def human_it():
    if not DATA.exists():
        pytest.skip("kriegeskorte92.npz not available")
    with np.load(DATA, allow_pickle=False) as found:
        rdms = found["hit_rdms"]
        vectors = np.stack([squareform(rdms[s, k], checks=False) for s in range(4) for k in range(2)])
        return {"data": vectors, "mit": found["mit_rdm"], "fig1": found["hit_fig1_rdm"],
                "category": found["category_vectors"]}


def test_scores_and_ceiling_equal_rsatoolbox(human_it):
    from rsatoolbox.inference import boot_noise_ceiling, eval_fixed
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs

    data = human_it["data"]
    animate = category_rdm(human_it["category"][:, 0])
    candidates = {"mit": human_it["mit"], "animate": animate}
    rows = []
    brain = {}
    for s, vector in enumerate(data):
        result = compare_to_candidates({"IT": vector}, candidates, method="spearman", n_perm=0, n_boot=0,
                                       layers=["mit"])
        rows.append(result["comparison"].assign(subject=f"s{s}"))
        brain[f"s{s}"] = {"IT": vector}
    import pandas as pd

    comparison = pd.concat(rows, ignore_index=True)
    group = group_comparison(comparison, brain, layers=["mit"], method="spearman", n_boot=50, seed=0)["group"]
    rsatoolbox_data = RDMs(data)
    for name, vector in candidates.items():
        expected = eval_fixed(ModelFixed(name, RDMs(vector[None])), rsatoolbox_data, method="spearman").evaluations
        ours = comparison.loc[comparison["candidate"] == name, "r"].to_numpy()
        np.testing.assert_allclose(ours, expected.ravel(), atol=1e-10)
    lower, upper = boot_noise_ceiling(rsatoolbox_data, method="spearman")
    row = group[group["candidate"] == "mit"].iloc[0]
    assert row["ceiling_lower"] == pytest.approx(lower, abs=1e-10)
    assert row["ceiling_upper"] == pytest.approx(upper, abs=1e-10)
    assert row["percent_of_ceiling"] == pytest.approx(100 * row["mean"] / lower)


def test_image_bootstrap_drops_self_pairs_as_rsatoolbox(human_it):
    from rsatoolbox.rdm import RDMs, compare

    indices = np.array([0, 0, 1, 2, 3, 5, 5, 7, *range(10, 92)])
    ours = image_bootstrap_rdm_correlations(human_it["data"][:3], human_it["mit"][None], method="spearman",
                                           indices=indices[None])[0, :, 0]
    sample = RDMs(human_it["data"][:3]).subsample_pattern("index", indices)
    model = RDMs(human_it["mit"][None]).subsample_pattern("index", indices)
    expected = compare(sample, model, method="spearman").ravel()
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_relabeling_p_exact_when_enumerable_and_calibrated_under_null():
    rng = np.random.default_rng(0)
    result = compare_to_candidates({"roi": rng.random(10)}, {"layer": rng.random(10)}, n_perm=200, n_boot=0)
    assert bool(result["comparison"]["p_exact"].iloc[0])  # 5 images: all 120 relabelings
    # independent RDMs of 12 images: relabeling p below .05 in about 5% of data sets
    p = [compare_to_candidates({"roi": rng.random(66)}, {"layer": rng.random(66)}, n_perm=99, n_boot=0,
                               seed=i)["comparison"]["p"].iloc[0] for i in range(300)]
    assert 0.02 < np.mean(np.asarray(p) < 0.05) < 0.09


def test_best_layer_interval_covers_planted_layer():
    rng = np.random.default_rng(1)
    n_pairs = 30 * 29 // 2
    layers = {f"layer{k}": rng.random(n_pairs) for k in range(4)}
    brain = {"V1": layers["layer1"] + 0.3 * rng.random(n_pairs), "LO": layers["layer3"] + 0.3 * rng.random(n_pairs)}
    best = compare_to_candidates(brain, layers, n_perm=0, n_boot=200, seed=0)["best"].set_index("roi")
    assert best.loc["V1", "best_layer"] == "layer1" and best.loc["LO", "best_layer"] == "layer3"
    assert best.loc["V1", "best_frequency"] > 0.9


def test_rsatoolbox_round_trip_keeps_ids_and_metric():
    rng = np.random.default_rng(2)
    rdms = {"V1": rng.random(6), "LO": rng.random(6)}
    converted = to_rsatoolbox(rdms, ["a", "b", "c", "d"], metric="squared_euclidean")
    assert converted.dissimilarity_measure == "euclidean"  # rsatoolbox's name for it
    assert list(converted.pattern_descriptors["image_id"]) == ["a", "b", "c", "d"]
    back = from_rsatoolbox(converted)
    assert back["names"] == ["V1", "LO"] and back["image_ids"] == ["a", "b", "c", "d"]
    assert back["metric"] == "squared_euclidean"
    np.testing.assert_array_equal(back["rdms"], np.stack(list(rdms.values())))
    with pytest.raises(ValueError, match="image_ids: expected 4"):
        to_rsatoolbox(rdms, ["a", "b"])


def test_relabeling_test_runs_one_roi_candidate_pair_at_a_time():
    # each (roi, candidate) pair's p is its own test on the shared relabelings, and the ROIs are not
    # repeated against every candidate (at 10,000 images those copies were 9.6 GB)
    import tracemalloc

    from brainprobe.stats import rdm_permutation_test
    from brainprobe.stats._resampling import permutation_set

    rng = np.random.default_rng(0)
    n = 400
    m = n * (n - 1) // 2
    brain = {"V1": rng.random(m), "LO": rng.random(m)}
    candidates = {"a": rng.random(m), "b": rng.random(m), "c": brain["V1"] + rng.random(m)}
    tracemalloc.start()
    try:
        found = compare_to_candidates(brain, candidates, method="pearson", n_perm=20, n_boot=0, seed=5)["comparison"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # measured: 11 MB one pair at a time; the six pairs at once (repeated, tiled, normalized,
    # squared) took 38 MB
    assert peak < 20 * 8 * n * n
    perms, _ = permutation_set(n, 20, np.random.default_rng(5))
    for row in found.itertuples():
        expected = rdm_permutation_test(brain[row.roi], candidates[row.candidate], method="pearson", permutations=perms)
        assert row.p == expected.p[0]
