"""Resampling streams in chunks sized by a memory budget, and the budget never changes a result."""

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _studies import kinds_table
from brainprobe._internal import (
    bootstrap_indices,
    memory_budget_bytes,
    normalize_rows,
    p_from_null,
    pair_permutation_indices,
    permutation_set,
)
from brainprobe.rsa import kind_difference, kind_similarity, rdm, searchlight_kind_similarity
from brainprobe.stats import bootstrap, memory_budget, rdm_permutation_test, set_memory_budget

# from 10 kB (one row of one relabeling at a time) to 4 GiB (everything at once)
BUDGETS_GB = (1e-5, 1e-3, 0.05, 4.0)


def _related_rdms(n_sets, n_items, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_sets, n_items, 12))
    y = x + 3 * rng.normal(size=x.shape)
    return np.stack([rdm(v) for v in x]), np.stack([rdm(v) for v in y])


@pytest.mark.parametrize("n_sets, n_items", [(3, 7), (6, 40), (1, 300)])
@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_permutation_null_is_the_same_under_every_budget(n_sets, n_items, method):
    """Chunked (tiny budget) and unchunked (everything at once) give the same null, bit for bit."""
    a, b = _related_rdms(n_sets, n_items)
    n_perm = 60 if n_items == 300 else 400
    results = [rdm_permutation_test(a, b, method=method, n_perm=n_perm, seed=5, memory_gb=gb) for gb in BUDGETS_GB]
    for result in results[1:]:
        np.testing.assert_array_equal(result.null, results[0].null)
        np.testing.assert_array_equal(result.p, results[0].p)
    # and the chunk cap `chunk` does not change it either
    np.testing.assert_array_equal(
        rdm_permutation_test(a, b, method=method, n_perm=n_perm, seed=5, chunk=3).null, results[0].null)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_streamed_null_equals_the_condensed_gather(method):
    """The square-matrix null equals the earlier definition (gather the condensed vector under
    `pair_permutation_indices`) to rounding, and so gives the same p with the same seed."""
    a, b = _related_rdms(4, 25, seed=3)
    result = rdm_permutation_test(a, b, method=method, n_perm=300, seed=11, memory_gb=1e-4)
    perms, _ = permutation_set(25, 300, 11)
    za, zb = normalize_rows(a, method), normalize_rows(b, method)
    condensed_null = np.einsum("si,sci->sc", za, zb[:, pair_permutation_indices(perms)])
    np.testing.assert_allclose(result.null, condensed_null, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(result.p, p_from_null(result.observed, condensed_null, "greater"))


def test_exact_enumeration_counts_the_identity_under_a_small_budget():
    a, b = _related_rdms(2, 5)
    result = rdm_permutation_test(a, b, n_perm=1000, seed=0, memory_gb=1e-6)
    assert result.exact and result.null.shape == (2, 120)
    # the identity is among the null and ties with the observed statistic
    assert np.all(result.p >= 1 / 120)


@pytest.mark.parametrize("replace, fraction", [(True, 1.0), (False, 0.8)])
def test_bootstrap_streams_the_same_indices_in_any_batch(replace, fraction):
    whole = bootstrap_indices(50, 37, seed=4, fraction=fraction, replace=replace)
    for batch_size in (1, 5, 37, 100):
        seen = bootstrap(lambda index: index, 50, n_boot=37, fraction=fraction, replace=replace, seed=4,
                         batch_size=batch_size)
        np.testing.assert_array_equal(seen, whole)


def _kinds_study(n=24, n_units=60, seed=0):
    rng = np.random.default_rng(seed)
    table = kinds_table(n)
    base = rng.normal(size=(n, n_units))
    patterns = np.concatenate([base, rng.normal(size=(n, n_units)), base + rng.normal(size=(n, n_units))])
    return table, {"v1": patterns, "v2": patterns[:, ::-1] + 0.5 * rng.normal(size=patterns.shape)}


def test_kind_tables_are_the_same_under_every_budget():
    """p-values and CIs of kind_similarity and kind_difference do not depend on the chunking."""
    table, sets = _kinds_study()
    similarity = [kind_similarity(sets, table, n_perm=200, n_boot=60, seed=2, device="cpu", memory_gb=gb)
                  for gb in (1e-4, 4.0)]
    pd.testing.assert_frame_equal(similarity[0], similarity[1], check_exact=True)
    difference = [kind_difference(sets, table, n_boot=80, seed=2, memory_gb=gb) for gb in (1e-4, 4.0)]
    pd.testing.assert_frame_equal(difference[0], difference[1], check_exact=True)
    # the process-wide budget is what the functions use when given none
    with memory_budget(1e-4):
        assert memory_budget_bytes() == int(1e-4 * 2**30)
        pd.testing.assert_frame_equal(kind_difference(sets, table, n_boot=80, seed=2), difference[0],
                                      check_exact=True)


def test_searchlight_is_the_same_under_every_budget():
    table, sets = _kinds_study(n=12, n_units=80)
    index = np.arange(80)
    disks = sp.csr_matrix(np.abs(index[:, None] - index[None, :]) <= 3)
    maps = [searchlight_kind_similarity(sets["v1"], table, disks, n_perm=50, seed=1, memory_gb=gb)
            for gb in (1e-4, 4.0)]
    pd.testing.assert_frame_equal(maps[0], maps[1], check_exact=True)


def test_budget_errors_name_the_setting(monkeypatch):
    with pytest.raises(ValueError, match="memory_gb"):
        rdm_permutation_test(*_related_rdms(1, 5), n_perm=10, memory_gb=-1)
    monkeypatch.setenv("BRAINPROBE_MEMORY_GB", "lots")
    with pytest.raises(ValueError, match="BRAINPROBE_MEMORY_GB"):
        memory_budget_bytes()
    monkeypatch.setenv("BRAINPROBE_MEMORY_GB", "2")
    assert memory_budget_bytes() == 2 * 2**30
    set_memory_budget(1)
    try:
        assert memory_budget_bytes() == 2**30  # the budget set in the process wins over the environment
        assert memory_budget_bytes(0) == 2**30  # 0, as in the study file: no budget of its own
    finally:
        set_memory_budget(None)
    # 0 is the default at every level (the study file's [compute] memory_gb = 0 says so)
    monkeypatch.setenv("BRAINPROBE_MEMORY_GB", "0")
    default = memory_budget_bytes()
    monkeypatch.delenv("BRAINPROBE_MEMORY_GB")
    assert default == memory_budget_bytes() > 0
    with memory_budget(0):
        assert memory_budget_bytes() == default


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from brainprobe.stats import rdm_permutation_test
    n = 2000
    rng = np.random.default_rng(0)
    pairs = n * (n - 1) // 2
    a = rng.random(pairs)
    b = a + rng.random(pairs)
    # a hard cap on the address space: what is mapped now (the interpreter, numpy, torch) + 4 GiB
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    limit = mapped + 4 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    result = rdm_permutation_test(a, b, n_perm=100, seed=0, memory_gb=1.0)  # the budget, not the free RAM, sizes chunks
    # VmHWM: this process's own peak resident memory (ru_maxrss would carry the forking pytest
    # process's peak across exec)
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
    print(result.p[0], peak / 2**30)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_a_2000_image_permutation_test_runs_in_4_gib():
    """2,000 images (2M pairs): the old (chunk x n_pairs) index arrays took > 6 GiB and failed here."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    p, peak_gib = map(float, done.stdout.split())
    assert p == pytest.approx(1 / 101)
    assert peak_gib < 4.0


def test_searchlight_blocks_on_a_dask_cluster_give_the_same_table():
    """Blocks of centres on two Dask workers: the same table, p_fwe included, as one process."""
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_config

    table, sets = _kinds_study(n=10, n_units=60, seed=4)
    index = np.arange(60)
    disks = sp.csr_matrix(np.abs(index[:, None] - index[None, :]) <= 2)
    single = searchlight_kind_similarity(sets["v2"], table, disks, n_perm=40, seed=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster), parallel_config(backend="dask"):
        split = searchlight_kind_similarity(sets["v2"], table, disks, n_perm=40, seed=3, n_jobs=3, memory_gb=1e-4)
    pd.testing.assert_frame_equal(split, single, check_exact=True)


def test_compute_memory_gb_is_checked_and_leaves_cache_keys_alone():
    from brainprobe.pipeline import ConfigError, validate

    base = {"study": {"name": "t", "output": "out", "seed": 0}, "subjects": {"simulate": 1}}
    with pytest.raises(ConfigError, match=r"\[compute\] memory_gb"):
        validate({**base, "compute": {"memory_gb": -2.0}}, source="study.toml")
    config = validate({**base, "compute": {"memory_gb": 1.5}}, source="study.toml")
    assert config["compute"]["memory_gb"] == 1.5
    assert "compute" not in config.section_json("rsa", "searchlight", "encoding", "subjects", "rois")


def test_average_repeats_in_blocks_of_images_is_the_mean_of_each_images_trials():
    from brainprobe.data import Responses
    from brainprobe.data._responses import _AVERAGING_BLOCK

    rng = np.random.default_rng(0)
    n_images = _AVERAGING_BLOCK + 90  # two blocks
    trials = pd.DataFrame({"image_id": [f"i{k}" for _ in range(2) for k in rng.permutation(n_images)],
                           "kind": "RE", "repeat": np.repeat([0, 1], n_images), "run": 0, "session": 0})
    betas = rng.normal(size=(len(trials), 30))
    patterns, table = Responses(betas, trials).average_repeats()
    expected = pd.DataFrame(betas).groupby(trials["image_id"].to_numpy()).mean().loc[table["image_id"]].to_numpy()
    np.testing.assert_allclose(patterns, expected, rtol=0, atol=1e-13)
    assert table["n_repeats"].eq(2).all()


def test_simulated_features_in_batches_equal_one_image_at_a_time():
    """Gabor features go a few images at a time (memory grew ~50 MB per image); each image's
    features are the same whatever batch it falls in."""
    import torch

    from brainprobe.data._simulate import _GABOR_BATCH, gabor_energy_features

    images = torch.rand(_GABOR_BATCH + 3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    together = gabor_energy_features(images, 8.0, 4)
    alone = np.concatenate([gabor_energy_features(images[i:i + 1], 8.0, 4) for i in range(len(images))])
    np.testing.assert_array_equal(together, alone)


def _gathered_correlation(a, b, draw, method):
    """One image resample the long way: build its RDMs, drop an image's pairs with its own copy,
    re-rank (scipy) and correlate."""
    from scipy.spatial.distance import squareform
    from scipy.stats import pearsonr, spearmanr

    i, j = np.triu_indices(len(draw), 1)
    keep = draw[i] != draw[j]
    x, y = (squareform(v)[draw[i], draw[j]][keep] for v in (a, b))
    if method == "spearman":
        return spearmanr(x, y)[0]
    if method == "pearson":
        return pearsonr(x, y)[0]
    return x @ y / np.sqrt((x @ x) * (y @ y))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_image_bootstrap_from_pair_weights_equals_rebuilding_each_resample(method, ties):
    """Ranks from draw counts over RDMs sorted once equal re-ranking each gathered resample (scipy),
    ties in the RDMs included, and no batch size or budget changes a bit of the result."""
    from brainprobe._internal import bootstrap_indices
    from brainprobe.stats import image_bootstrap_rdm_correlations

    rng = np.random.default_rng(7)
    n = 25
    a = rng.random((2, n * (n - 1) // 2))
    b = np.stack([a[0] + rng.random(a.shape[1]), rng.random(a.shape[1])])
    if ties:  # few distinct values: long tied runs, as in categorical model RDMs
        a, b = np.round(4 * a), np.round(3 * b)
    draws = bootstrap_indices(n, 40, seed=3)
    draws[0] = 0  # one image only: no pair left, NaN
    samples = image_bootstrap_rdm_correlations(a, b, method=method, indices=draws)
    assert np.isnan(samples[0]).all()
    expected = np.array([[[_gathered_correlation(a[p], b[q], draw, method) for q in range(2)] for p in range(2)]
                         for draw in draws[1:]])
    np.testing.assert_allclose(samples[1:], expected, rtol=0, atol=1e-12)
    for batch_size in (1, 7):
        np.testing.assert_array_equal(
            image_bootstrap_rdm_correlations(a, b, method=method, indices=draws, batch_size=batch_size), samples)
    np.testing.assert_array_equal(
        image_bootstrap_rdm_correlations(a, b, method=method, indices=draws, memory_gb=1e-6), samples)


def test_kind_image_bootstrap_equals_masked_correlation_of_gathered_resamples():
    """kind_image_bootstrap (no resample gathered) against the definition: gather each resample's
    RDM entries, drop the pairs of a source with its own copy, Spearman over the rest."""
    from brainprobe._internal import masked_correlation
    from brainprobe.rsa import kind_image_bootstrap, square_rdm

    table, sets = _kinds_study(n=16, n_units=30, seed=5)
    _, samples = kind_image_bootstrap(sets, table, n_boot=30, seed=9, return_samples=True)
    draws = np.random.default_rng(9).integers(0, 16, size=(30, 16))
    i, j = np.triu_indices(16, 1)
    a, b = draws[:, i], draws[:, j]
    for s, values in enumerate(sets.values()):
        squares = {kind: square_rdm(rdm(values[table["kind"].to_numpy() == kind])) for kind in ("RE", "AN", "AI")}
        for other in ("AN", "AI"):
            expected = masked_correlation(squares["RE"][a, b], squares[other][a, b], a != b, "spearman")
            np.testing.assert_allclose(samples[f"RE-{other}"][:, s], expected, rtol=0, atol=1e-12)
