"""Crossnobis searchlights (runs as folds): every centre's RDM is `rdm`'s crossnobis RDM of its vertices."""

import numpy as np
import pytest
import scipy.sparse as sp


def _trials(seed=0, n_runs=3, n_conditions=7, n_vertices=40):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n_conditions, n_vertices))
    runs = np.repeat(np.arange(1, n_runs + 1), n_conditions)
    conditions = np.tile([f"img{c}" for c in rng.permutation(n_conditions)], n_runs)  # unsorted within runs
    betas = signal[[int(c[3:]) for c in conditions]] + rng.normal(size=(len(runs), n_vertices))
    return betas, runs, conditions


def _disks(n_vertices, seed=1, n_centers=25):
    rng = np.random.default_rng(seed)
    rows = [np.unique(rng.choice(n_vertices, rng.integers(1, 12), replace=False)) for _ in range(n_centers)]
    return sp.csr_matrix((np.ones(sum(map(len, rows))), np.concatenate(rows), np.cumsum([0] + [len(r) for r in rows])),
                         shape=(n_centers, n_vertices)), rows


def test_each_centre_is_the_crossnobis_rdm_of_its_vertices():
    from brainprobe.rsa import rdm, searchlight_rdms

    betas, runs, conditions = _trials()
    disks, members = _disks(betas.shape[1])
    maps = searchlight_rdms(betas, disks, "crossnobis", runs=runs, conditions=conditions, chunk_size=4)
    assert maps.shape == (25, 21)
    for centre, inside in enumerate(members):
        expected = rdm(betas[:, inside], "crossnobis", runs=runs, conditions=conditions)
        np.testing.assert_allclose(maps[centre], expected, rtol=1e-12, atol=1e-12)
    # the chunking (memory budget) changes nothing
    np.testing.assert_array_equal(
        maps, searchlight_rdms(betas, disks, "crossnobis", runs=runs, conditions=conditions, chunk_size=1000))


def test_a_centre_equals_rsatoolbox_crossnobis():
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    from brainprobe.rsa import searchlight_rdms

    betas, runs, conditions = _trials(seed=2, n_runs=4)
    disks, members = _disks(betas.shape[1], seed=3)
    maps = searchlight_rdms(betas, disks, "crossnobis", runs=runs, conditions=conditions)
    for centre in (0, 7, 19):
        dataset = Dataset(betas[:, members[centre]], obs_descriptors={"conds": conditions, "runs": runs})
        expected = calc_rdm(dataset, method="crossnobis", descriptor="conds", cv_descriptor="runs")
        assert list(expected.pattern_descriptors["conds"]) == sorted(set(conditions))
        np.testing.assert_allclose(maps[centre], expected.get_vectors()[0], rtol=1e-10, atol=1e-10)


def test_crossnobis_searchlight_errors_name_what_is_missing():
    from brainprobe.rsa import searchlight_rdms

    betas, runs, conditions = _trials()
    disks, _ = _disks(betas.shape[1])
    with pytest.raises(ValueError, match="runs= and conditions="):
        searchlight_rdms(betas, disks, "crossnobis")
    with pytest.raises(ValueError, match="at least two runs"):
        searchlight_rdms(betas, disks, "crossnobis", runs=np.ones(len(runs)), conditions=conditions)
    with pytest.raises(ValueError, match="missing from a fold"):
        searchlight_rdms(betas[1:], disks, "crossnobis", runs=runs[1:], conditions=conditions[1:])
