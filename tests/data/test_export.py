"""Responses written back as NIfTI (volume) and nilearn SurfaceImage (surface)."""

import nibabel as nib
import numpy as np
import pytest

from brainprobe.data import load_responses
from brainprobe.roi import Mesh


def test_nifti_round_trip_keeps_voxels_and_affine(tmp_path):
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    affine[:3, 3] = [-40, -60, -20]
    data = rng.normal(size=(5, 6, 4, 8))
    mask = np.zeros((5, 6, 4), bool)
    mask[1:4, 2:5, 1:3] = True
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "betas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    trials = {"image_id": [f"im{i}" for i in range(8)]}
    import pandas as pd

    responses = load_responses(tmp_path / "betas.nii.gz", pd.DataFrame(trials), mask=tmp_path / "mask.nii.gz")
    table = responses.vertices
    expected_mm = np.column_stack([table[["i", "j", "k"]].to_numpy(), np.ones(len(table))]) @ affine[:3].T
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), expected_mm)
    image = responses.to_nifti(shape=(5, 6, 4))
    np.testing.assert_allclose(image.affine, affine, atol=1e-10)
    written = np.asarray(image.dataobj)
    np.testing.assert_allclose(written[mask], data[mask])
    assert np.isnan(written[~mask]).all()
    one_map = responses.to_nifti(responses.betas[0], shape=(5, 6, 4))
    assert one_map.shape == (5, 6, 4)


def test_surface_image_places_vertices():
    from brainprobe.data import Responses

    mesh = Mesh(np.random.default_rng(0).normal(size=(8, 3)), np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6], [5, 6, 7]]))
    vertices = {"hemi": ["L", "L", "R"], "vertex": [0, 5, 3]}
    import pandas as pd

    responses = Responses(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]]), pd.DataFrame({"image_id": ["a", "b"]}),
                          pd.DataFrame(vertices), meshes={"L": mesh, "R": mesh})
    image = responses.to_surface_image(np.array([1.0, 2.0, 3.0]))
    left, right = np.asarray(image.data.parts["left"]), np.asarray(image.data.parts["right"])
    assert left[0] == 1 and left[5] == 2 and right[3] == 3
    assert np.isnan(left).sum() == mesh.n_vertices - 2
    with pytest.raises(ValueError, match="no i, j, k"):
        responses.to_nifti()


def test_gifti_maps_round_trip_through_files_and_nilearn(tmp_path):
    import pandas as pd
    from nilearn.surface import load_surf_data

    from brainprobe.data import values_to_gifti
    from brainprobe.pipeline._general import searchlight_surfaces

    vertices = pd.DataFrame({"hemi": ["L", "L", "R", "R", "R"], "vertex": [4, 0, 2, 7, 5]})
    values = np.arange(10.0).reshape(2, 5)
    images = values_to_gifti(vertices, {"L": 6, "R": 9}, values, names=["conv2", "fc7"])
    for hemi, n in (("L", 6), ("R", 9)):
        path = tmp_path / f"hemi-{hemi}.func.gii"
        images[hemi].to_filename(path)
        # nilearn reads it: (n_mesh_vertices, n_maps); nilearn 0.11 gives an object array of floats
        data = np.asarray(load_surf_data(str(path)), dtype=np.float64)
        assert data.shape == (n, 2)
        mine = vertices[vertices["hemi"] == hemi]
        np.testing.assert_array_equal(data[mine["vertex"].to_numpy()], values[:, mine.index].T)
        assert np.isnan(np.delete(data, mine["vertex"].to_numpy(), axis=0)).all()
        assert [a.meta["Name"] for a in nib.load(path).darrays] == ["conv2", "fc7"]
    with pytest.raises(ValueError, match="beyond its mesh"):
        values_to_gifti(vertices, {"L": 6, "R": 7}, values)
    # the pipeline's surface searchlight table becomes one GIfTI per subject x hemisphere
    table = vertices.assign(subject="sub-01", **{"r_conv2": values[0], "r_fc7": values[1]}, best="fc7")
    written = searchlight_surfaces(table, {"sub-01": {"L": 6, "R": 9}})
    np.testing.assert_array_equal(written["sub-01"]["R"].darrays[1].data[[2, 7, 5]], values[1, 2:])
