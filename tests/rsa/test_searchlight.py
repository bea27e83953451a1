import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from _studies import kinds_table
from brainprobe._internal import correlate_rows
from brainprobe.rsa import kind_similarity, rdm, searchlight_kind_similarity, searchlight_rdms


def _line_neighbourhoods(n_vertices, radius):
    """Vertices on a line; each disk holds the vertices within `radius` steps."""
    index = np.arange(n_vertices)
    return sp.csr_matrix(np.abs(index[:, None] - index[None, :]) <= radius)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_searchlight_rdms_equal_per_disk_rdms(metric):
    rng = np.random.default_rng(0)
    patterns = rng.normal(size=(10, 60))
    disks = _line_neighbourhoods(60, 3)
    got = searchlight_rdms(patterns, disks, metric, chunk_size=7)
    for center in (0, 17, 59):
        members = disks[center].indices
        np.testing.assert_allclose(got[center], rdm(patterns[:, members], metric), atol=1e-9)


def _searchlight_study(n=20, n_vertices=200, signal=slice(50, 100), seed=0):
    rng = np.random.default_rng(seed)
    table = kinds_table(n)
    re_patterns = rng.normal(size=(n, n_vertices))
    an = rng.normal(size=(n, n_vertices))
    ai = rng.normal(size=(n, n_vertices))
    ai[:, signal] = re_patterns[:, signal] + 0.3 * rng.normal(size=(n, signal.stop - signal.start))
    return table, np.concatenate([re_patterns, an, ai])


def test_searchlight_maps_find_the_planted_region():
    table, patterns = _searchlight_study()
    disks = _line_neighbourhoods(200, 4)
    result = searchlight_kind_similarity(patterns, table, disks, n_perm=200, seed=0, chunk_size=64)
    ai = result[result["pair"] == "RE-AI"].set_index("center")
    an = result[result["pair"] == "RE-AN"].set_index("center")
    inside, outside = ai.loc[55:95], ai.loc[list(range(0, 40)) + list(range(110, 200))]
    assert inside["similarity"].min() > 0.5 and outside["similarity"].abs().mean() < 0.15
    assert (inside["p_fwe"] <= 0.05).all()
    assert (an["p_fwe"] > 0.05).mean() > 0.9
    assert (ai["p_fwe"] >= ai["p_perm"] - 1e-12).all()
    assert (ai["n_vertices"].loc[10:190] == 9).all()


def test_searchlight_centre_equals_roi_analysis():
    table, patterns = _searchlight_study(seed=1)
    disks = _line_neighbourhoods(200, 4)
    maps = searchlight_kind_similarity(patterns, table, disks)
    members = disks[70].indices
    roi = kind_similarity({"disk": patterns[:, members]}, table, n_perm=0, n_boot=0).set_index("pair")
    centre = maps[maps["center"] == 70].set_index("pair")
    for pair in ("RE-AN", "RE-AI"):
        assert centre.loc[pair, "similarity"] == pytest.approx(roi.loc[pair, "similarity"], abs=1e-10)


@pytest.mark.parametrize(("metric", "method"), [("correlation", "spearman"), ("euclidean", "pearson"),
                                               ("cosine", "kendall_tau_a")])
def test_searchlight_chunks_in_threads_give_every_disk_its_own_value(metric, method, monkeypatch):
    """Chunks of centres run in as many threads as BLAS would use: any thread count gives the same
    bits, and each disk the correlation of its own two RDMs (scipy's, on `rdm`)."""
    from scipy.stats import kendalltau, pearsonr, spearmanr

    from brainprobe.rsa import _searchlight

    table, patterns = _searchlight_study(seed=2)
    disks = _line_neighbourhoods(200, 4)
    monkeypatch.setattr(_searchlight, "_THREADED_PAIRS", 0)  # threads at 20 images too
    maps = {}
    for threads in (1, 3):
        monkeypatch.setattr(_searchlight, "_blas_threads", lambda threads=threads: threads)
        maps[threads] = searchlight_kind_similarity(patterns, table, disks, metric=metric, method=method, chunk_size=6)
    np.testing.assert_array_equal(maps[1]["similarity"], maps[3]["similarity"])
    reference = {"spearman": spearmanr, "pearson": pearsonr, "kendall_tau_a": kendalltau}[method]
    result = maps[3].set_index(["pair", "center"])["similarity"]
    for centre in (0, 61, 133, 199):
        members = disks[centre].indices
        re_rdm = rdm(patterns[:20, members], metric)
        for pair, rows in (("RE-AN", slice(20, 40)), ("RE-AI", slice(40, 60))):
            expected = reference(re_rdm, rdm(patterns[rows, members], metric))[0]  # no ties: tau-a is tau-b
            assert result[pair, centre] == pytest.approx(expected, abs=1e-12)


def test_searchlight_validates_shapes():
    table, patterns = _searchlight_study()
    with pytest.raises(ValueError, match="200 columns"):
        searchlight_kind_similarity(patterns, table, _line_neighbourhoods(150, 2))


def test_searchlight_with_every_relabeling_enumerated_gives_exact_fwe_p():
    # 5 images: 5! = 120 <= n_perm, so all 120 relabelings are used (and the null maxima must
    # have 120 entries, not n_perm); exact p-values are multiples of 1/120, never below it
    table, patterns = _searchlight_study(n=5, n_vertices=40, signal=slice(10, 20))
    maps = searchlight_kind_similarity(patterns, table, _line_neighbourhoods(40, 2), n_perm=1000, seed=0)
    for column in ("p_perm", "p_fwe"):
        values = maps[column].to_numpy()
        assert np.isfinite(values).all() and values.min() >= 1 / 120 - 1e-12
        np.testing.assert_allclose(values * 120, np.round(values * 120), atol=1e-9)
    assert (maps["p_fwe"] >= maps["p_perm"] - 1e-12).all()


def _rdms_from_disk_sums(patterns, disks, metric):
    """The earlier searchlight definition: per disk, sums, sums of squares and cross products of
    every image pair over its vertices (an (n_pairs x n_vertices) product per chunk)."""
    members = sp.csr_matrix(disks, dtype=float)
    rows, cols = np.triu_indices(len(patterns), 1)
    counts = np.asarray(members.sum(axis=1))
    sums, squares = members @ patterns.T, members @ (patterns * patterns).T
    cross = members @ (patterns[rows] * patterns[cols]).T
    if metric == "correlation":
        variance = squares - sums**2 / counts
        return 1.0 - (cross - sums[:, rows] * sums[:, cols] / counts) / np.sqrt(variance[:, rows] * variance[:, cols])
    if metric == "cosine":
        return 1.0 - cross / np.sqrt(squares[:, rows] * squares[:, cols])
    squared = np.maximum(squares[:, rows] + squares[:, cols] - 2 * cross, 0.0)
    return np.sqrt(squared) if metric == "euclidean" else squared / counts


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_searchlight_gram_per_disk_equals_the_disk_sums_definition(metric):
    """One Gram matrix per disk gives the RDMs and maps of the sums-of-products definition to 1e-10,
    on disks of uneven sizes (3 to 30 vertices) in any chunking."""
    rng = np.random.default_rng(3)
    n_vertices = 120
    disks = sp.lil_matrix((n_vertices, n_vertices), dtype=bool)
    for centre in range(n_vertices):
        disks[centre, rng.choice(n_vertices, size=rng.integers(3, 31), replace=False)] = True
    disks = disks.tocsr()
    table = kinds_table(15)
    patterns = rng.normal(size=(len(table), n_vertices)) + rng.normal(size=(1, n_vertices))
    patterns[15:30] = patterns[:15] + rng.normal(size=(15, n_vertices))  # AN related to RE
    rows = {kind: np.flatnonzero(table["kind"].to_numpy() == kind) for kind in ("RE", "AN", "AI")}
    expected = {kind: _rdms_from_disk_sums(patterns[index], disks, metric) for kind, index in rows.items()}
    for chunk_size in (1, 7, 4096):
        np.testing.assert_allclose(searchlight_rdms(patterns[rows["RE"]], disks, metric, chunk_size=chunk_size),
                                   expected["RE"], rtol=0, atol=1e-10)
    maps = searchlight_kind_similarity(patterns, table, disks, metric=metric, chunk_size=13)
    for other in ("AN", "AI"):
        found = maps.loc[maps["pair"] == f"RE-{other}", "similarity"].to_numpy()
        np.testing.assert_allclose(found, correlate_rows(expected["RE"], expected[other], "spearman"),
                                   rtol=0, atol=1e-10)


def test_a_searchlight_projected_past_the_limit_says_how_long_and_what_is_faster(monkeypatch):
    from brainprobe.rsa import _searchlight

    table, patterns = _searchlight_study(n=12, n_vertices=60, signal=slice(20, 40))
    disks = _line_neighbourhoods(60, 3)
    expected = searchlight_kind_similarity(patterns, table, disks, chunk_size=10)
    monkeypatch.setattr(_searchlight, "SLOW_SEARCHLIGHT_S", 0.0)  # any projection is past it
    monkeypatch.setattr(_searchlight, "PROJECT_AFTER_S", 0.0)  # projected from the first chunk
    with pytest.warns(UserWarning, match=r"the first 10 of 60 centres took .* s; all of them will take about .* h "
                                         r"at this rate \(12 images, spearman on the CPU\)\. Faster: method='pearson'.*"
                                         r"or a CUDA device"):
        found = searchlight_kind_similarity(patterns, table, disks, chunk_size=10)
    pd.testing.assert_frame_equal(found, expected)  # the warning changes nothing
    with pytest.warns(UserWarning, match=r"Faster: fewer permutations \(20 now\)"):
        searchlight_kind_similarity(patterns, table, disks, n_perm=20, chunk_size=10)


@pytest.mark.parametrize("metric", ["correlation", "cosine", "euclidean", "squared_euclidean"])
def test_large_rdms_carry_the_reference_ranks_and_give_scipy_spearman_per_disk(metric):
    """From 142 images (10,000 pairs) each disk's other-kind RDMs are sorted with the reference's
    sorted positions carried along (`RankedReference`): the value of every disk is still scipy's Spearman of
    its two RDMs, with tied distances (integer patterns), an image constant over a disk (NaN) and
    disks of 1 to 12 vertices.

    The expected RDMs are `searchlight_rdms`' (equal to `rdm`'s to 1e-9, tested above): a tie
    that `rdm` computes in another order can come out split by a rounding, and ranks differ."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(5)
    n, n_vertices = 150, 40
    table = kinds_table(n)
    patterns = rng.normal(size=(3 * n, n_vertices))
    patterns[2 * n:] += patterns[:n]  # AI related to RE
    patterns[n:2 * n, 30:] = rng.integers(0, 3, size=(n, 10))  # AN: tied distances on the last disks
    patterns[5, 13:15] = 1.0  # RE image 5 constant over disk 13 (vertices 13, 14): no correlation distance
    disks = sp.lil_matrix((n_vertices, n_vertices), dtype=bool)
    for centre in range(n_vertices):
        disks[centre, centre:centre + 1 + centre % 12] = True
    disks = disks.tocsr()
    maps = searchlight_kind_similarity(patterns, table, disks, metric=metric).set_index(["pair", "center"])
    for centre in (0, 7, 13, 33, 39):
        re_rdm = searchlight_rdms(patterns[:n], disks[centre], metric)[0]
        for pair, rows in (("RE-AN", slice(n, 2 * n)), ("RE-AI", slice(2 * n, 3 * n))):
            other = searchlight_rdms(patterns[rows], disks[centre], metric)[0]
            expected = spearmanr(re_rdm, other)[0] if np.isfinite(re_rdm).all() and np.isfinite(other).all() else np.nan
            found = maps.loc[(pair, centre), "similarity"]
            if np.isnan(expected):
                assert np.isnan(found), (pair, centre)
            else:
                assert found == pytest.approx(expected, abs=1e-12), (pair, centre)
    if metric == "correlation":
        assert np.isnan(maps.loc[("RE-AI", 13), "similarity"])
        assert np.isfinite(maps.loc[("RE-AI", 33), "similarity"])
