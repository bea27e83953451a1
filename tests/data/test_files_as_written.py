"""Files as the tools write them: gzipped meshes, image objects, CIFTI axis orders, single maps,
masks on another grid, and corrupt or truncated files."""

import gzip
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel import cifti2

from brainprobe import InputFileError
from brainprobe.data import load_responses
from brainprobe.roi import load_mesh

N_TRIALS, N_LEFT, N_RIGHT = 4, 6, 5


@pytest.fixture
def betas():
    return np.random.default_rng(0).normal(size=(N_TRIALS, N_LEFT + N_RIGHT)).astype(np.float32)


@pytest.fixture
def trials():
    return pd.DataFrame({"image_id": ["a", "b", "c", "d"], "kind": ["RE", "AN", "AI", "RE"]})


def _surface(n):
    x = np.arange(n, dtype=np.float32)
    points = nib.gifti.GiftiDataArray(np.column_stack([x, x % 2, np.zeros(n, np.float32)]),
                                      intent="NIFTI_INTENT_POINTSET")
    faces = nib.gifti.GiftiDataArray(np.array([[i, i + 1, i + 2] for i in range(n - 2)], np.int32),
                                     intent="NIFTI_INTENT_TRIANGLE")
    return nib.gifti.GiftiImage(darrays=[points, faces])


def _cifti(betas, brain_first=False):
    brain = (cifti2.BrainModelAxis.from_surface(np.arange(N_LEFT), N_LEFT, "CortexLeft")
             + cifti2.BrainModelAxis.from_surface(np.arange(N_RIGHT), N_RIGHT, "CortexRight"))
    scalars = cifti2.ScalarAxis([f"map{t}" for t in range(len(betas))])
    if brain_first:
        return cifti2.Cifti2Image(betas.T, cifti2.Cifti2Header.from_axes((brain, scalars)))
    return cifti2.Cifti2Image(betas, cifti2.Cifti2Header.from_axes((scalars, brain)))


def test_gzipped_gifti_meshes_and_gifti_image_objects(tmp_path):
    image = _surface(7)
    nib.save(image, tmp_path / "lh.white.surf.gii")
    with open(tmp_path / "lh.white.surf.gii", "rb") as plain, gzip.open(tmp_path / "lh.white.gii.gz", "wb") as packed:
        packed.write(plain.read())
    for source in (tmp_path / "lh.white.gii.gz", image):
        mesh = load_mesh(source)
        assert mesh.n_vertices == 7 and len(mesh.faces) == 5
    import nilearn

    shipped = sorted((Path(nilearn.__file__).parent / "datasets" / "data" / "fsaverage5").glob("pial_left.gii.gz"))
    if shipped:  # nilearn's own fsaverage5 mesh, as nilearn ships it
        assert load_mesh(shipped[0]).n_vertices == 10242


def test_a_mask_on_another_grid_is_an_error_and_image_objects_are_accepted(tmp_path, trials):
    volume = np.random.default_rng(1).normal(size=(3, 4, 2, N_TRIALS))
    mask = np.zeros((3, 4, 2), np.uint8)
    mask[1:, 1:3] = 1
    image = nib.Nifti1Image(volume, np.diag([2.0, 2.0, 2.0, 1.0]))
    mask_image = nib.Nifti1Image(mask, np.diag([2.0, 2.0, 2.0, 1.0]))
    nib.save(image, tmp_path / "betas.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.diag([3.0, 3.0, 3.0, 1.0])), tmp_path / "mask_3mm.nii.gz")
    with pytest.raises(ValueError, match=r"mask .*mask_3mm.nii.gz: its affine differs from the betas'.*resample"):
        load_responses(tmp_path / "betas.nii.gz", trials, mask=tmp_path / "mask_3mm.nii.gz")
    from_objects = load_responses(image, trials, mask=mask_image)
    np.testing.assert_allclose(from_objects.betas, volume[mask.astype(bool)].T)
    three_d = [nib.Nifti1Image(volume[..., t], image.affine) for t in range(N_TRIALS)]
    np.testing.assert_allclose(load_responses(three_d, trials, mask=mask_image).betas, from_objects.betas)


def test_cifti_in_either_axis_order_as_file_or_object_and_gifti_objects(tmp_path, betas, trials):
    expected = betas
    for brain_first in (False, True):
        image = _cifti(betas, brain_first)
        nib.save(image, tmp_path / f"b{brain_first}.dscalar.nii")
        for source in (tmp_path / f"b{brain_first}.dscalar.nii", image):
            loaded = load_responses(source, trials)
            np.testing.assert_allclose(loaded.betas, expected)
            assert loaded.vertices["hemi"].tolist() == ["L"] * N_LEFT + ["R"] * N_RIGHT
    gifti = {h: nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(row) for row in part])
             for h, part in (("L", betas[:, :N_LEFT]), ("R", betas[:, N_LEFT:]))}
    np.testing.assert_allclose(load_responses(gifti, trials).betas, expected)


def test_a_single_map_file_loads_without_its_vertices_called_constant(tmp_path, betas):
    nib.save(_cifti(betas[:1]), tmp_path / "one.dscalar.nii")
    one = load_responses(tmp_path / "one.dscalar.nii", pd.DataFrame({"image_id": ["objects"], "kind": ["objects"]}))
    assert one.n_trials == 1 and one.n_vertices == N_LEFT + N_RIGHT
    np.testing.assert_allclose(one.betas, betas[:1])


def _write_corrupt(tmp_path, betas):
    """Each format once with random bytes and once truncated."""
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    files = {}
    np.save(tmp_path / "good.npy", betas)
    np.savez(tmp_path / "good.npz", betas=betas)
    nib.save(nib.Nifti1Image(rng.normal(size=(3, 4, 2, N_TRIALS)), np.eye(4)), tmp_path / "good.nii.gz")
    nib.save(_cifti(betas), tmp_path / "good.dscalar.nii")
    nib.save(nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(r) for r in betas[:, :N_LEFT]]),
             tmp_path / "good_hemi-L.func.gii")
    with h5py.File(tmp_path / "TYPED_FITHRF_GLMDENOISE_RR.hdf5", "w") as handle:
        handle["betasmd"] = betas.T[:, None, None, :]
    for name, what in (("good.npy", "NumPy"), ("good.npz", "NumPy .npz"), ("good.nii.gz", "NIfTI"),
                       ("good.dscalar.nii", "CIFTI-2"), ("good_hemi-L.func.gii", "GIfTI"),
                       ("TYPED_FITHRF_GLMDENOISE_RR.hdf5", "GLMsingle .hdf5")):
        data = (tmp_path / name).read_bytes()
        for damage, content in (("random", noise), ("truncated", data[: len(data) // 2])):
            target = tmp_path / damage / name
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(content)
            files[target] = what
    return files


def test_corrupt_or_truncated_files_give_one_line_naming_the_file_and_the_format(tmp_path, betas, trials):
    for path, what in _write_corrupt(tmp_path, betas).items():
        source = {"L": path, "R": tmp_path / "good_hemi-L.func.gii"} if "gii" in path.name else path
        mask = np.ones((3, 4, 2), bool) if "nii.gz" in path.name else None
        with pytest.raises(ValueError) as caught:
            load_responses(source, trials, mask=mask)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and what in message, message
        assert "pickled" not in message, message
        assert type(caught.value) is InputFileError  # the public class, no private one leaks
