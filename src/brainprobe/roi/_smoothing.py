"""Gaussian smoothing on a cortical mesh by heat diffusion along its edges (sparse, no dense
distance matrix).

One diffusion step moves each vertex ``v`` a fraction ``w_v`` towards the mean of its neighbours.
On a locally flat 2-D surface that spreads a point's mass with variance ``w_v * E_v[e^2] / 2``
per axis (``E_v[e^2]``: the mean squared length of the edges at ``v``), and variances add over
steps. ``w_v`` is set per vertex so every step adds the same variance in mm^2 everywhere (mesh
edges are shorter in some places than others), and the number of steps so that the total is
sigma^2 = (FWHM / sqrt(8 ln 2))^2.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._mesh import Mesh, mesh_edges

__all__ = ["mesh_smoother", "FWHM_TO_SIGMA"]

MAX_STEP = 0.5

FWHM_TO_SIGMA = 1.0 / np.sqrt(8.0 * np.log(2.0))


_CACHE: dict = {}  # (mesh digest, fwhm) -> operator: simulated subjects of one study share it
_CACHE_SIZE = 4


def mesh_smoother(mesh: Mesh, fwhm_mm: float) -> sp.csr_matrix:
    """Sparse Gaussian smoothing operator of a given FWHM on a mesh.

    Parameters
    ----------
    mesh : Mesh
    fwhm_mm : float
        Full width at half maximum of the kernel, in mm along the surface (0: the identity).
        White noise smoothed by it has this FWHM in the sense fMRI smoothness estimators use
        (AFNI's 3dFWHMx, FSL's smoothest): the FWHM of the Gaussian kernel applied to white noise.

    Returns
    -------
    csr_matrix (n_vertices, n_vertices)
        ``S``; ``S @ x`` smooths a map ``x`` (n_vertices,) or maps (n_vertices, k). Rows sum to 1.

    Examples
    --------
    >>> from brainprobe.roi import standard_meshes, mesh_smoother
    >>> smoother = mesh_smoother(standard_meshes("fsaverage5")["L"], 6.0)  # doctest: +SKIP
    """
    if not np.isfinite(fwhm_mm) or fwhm_mm < 0:
        raise ValueError(f"fwhm_mm: expected a width >= 0 in mm, found {fwhm_mm!r}")
    n = mesh.n_vertices
    if fwhm_mm == 0:
        return sp.identity(n, format="csr")
    key = (mesh.digest(), float(fwhm_mm))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _build(mesh, float(fwhm_mm))
    return _CACHE[key].copy()


def _build(mesh: Mesh, fwhm_mm: float) -> sp.csr_matrix:
    graph = mesh_edges(mesh)
    degree = np.diff(graph.indptr)
    if (degree == 0).any():
        isolated = int((degree == 0).sum())
        raise ValueError(f"mesh {mesh.name!r}: {isolated} vertices belong to no face; they cannot be smoothed")
    squared = graph.copy()
    squared.data = squared.data**2
    mean_squared_edge = np.asarray(squared.sum(axis=1)).ravel() / degree  # (n_vertices,)
    sigma2 = (fwhm_mm * FWHM_TO_SIGMA) ** 2
    # steps small enough that the vertices with short edges (2nd percentile) move at most
    # MAX_STEP of the way to their neighbours' mean; shorter ones still are clipped there
    short = float(np.percentile(mean_squared_edge, 2))
    n_steps = int(np.ceil(sigma2 / (MAX_STEP * short / 2)))
    step_variance = sigma2 / n_steps
    weight = np.clip(2.0 * step_variance / mean_squared_edge, 0.0, 1.0)
    adjacency = (graph > 0).astype(np.float64)
    average = sp.diags(weight / degree) @ adjacency
    step = (sp.diags(1.0 - weight) + average).tocsr()
    smoother = step
    for _ in range(n_steps - 1):
        smoother = (smoother @ step).tocsr()
        # drop negligible weights so the operator stays sparse for wide kernels
        smoother.data[smoother.data < 1e-6] = 0.0
        smoother.eliminate_zeros()
    rows = np.asarray(smoother.sum(axis=1)).ravel()
    return (sp.diags(1.0 / rows) @ smoother).tocsr()
