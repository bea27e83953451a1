"""Disks by local Dijkstra (on the Euclidean ball around each chunk of sources) equal the disks
of one Dijkstra over the whole mesh, entry for entry."""

import numpy as np
import scipy.sparse as sp

from brainprobe.roi import Mesh, geodesic_neighbourhoods, mesh_edges
from brainprobe.roi._mesh import _dense_graph_neighbourhoods


def _folded_sheet(n=45, seed=0):
    """A jittered grid folded like a sulcus (so Euclidean and geodesic distances differ)."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    x += 0.3 * rng.uniform(-1, 1, x.shape)
    y += 0.3 * rng.uniform(-1, 1, y.shape)
    z = 6 * np.sin(x / 4)
    coordinates = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, c]), np.column_stack([b, d, c])])
    return Mesh(coordinates, faces, name="folded sheet")


def test_local_disks_equal_whole_mesh_dijkstra():
    mesh = _folded_sheet()
    for radius in (1.5, 4.0):
        local = geodesic_neighbourhoods(mesh, radius, chunk_size=64, progress=False)
        whole = sp.vstack(_dense_graph_neighbourhoods(mesh_edges(mesh), radius, 500, False)).tocsr()
        local.sort_indices(), whole.sort_indices()
        np.testing.assert_array_equal(local.indptr, whole.indptr)
        np.testing.assert_array_equal(local.indices, whole.indices)
        np.testing.assert_array_equal(local.data, whole.data)
        assert local.shape == (mesh.n_vertices, mesh.n_vertices)
