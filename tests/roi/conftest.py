"""Meshes with known geometry for the ROI tests."""

import numpy as np
import pytest

from brainprobe.roi import Mesh


def _grid_mesh(n=25, spacing=1.0):
    """A flat square grid split into triangles (one diagonal per square)."""
    x, y = np.meshgrid(np.arange(n) * spacing, np.arange(n) * spacing)
    coordinates = np.column_stack([x.ravel(), y.ravel(), np.zeros(n * n)])
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    return Mesh(coordinates, faces, "grid")


@pytest.fixture
def make_grid_mesh():
    """Factory: a flat square grid of n x n vertices, split into triangles (one diagonal per square)."""
    return _grid_mesh
