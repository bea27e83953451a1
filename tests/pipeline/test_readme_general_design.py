"""The README's general-design study file ("### Any image set: the general design") runs as
written through `brainprobe run`, on small files of the kinds it names: a volume subject (4D
NIfTI betas over three runs, a mask and a label atlas) and a subject given as ROI RDMs."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _readme import subsection_blocks

BLOCK = subsection_blocks("Your own data", "Any image set: the general design")["toml"]
CATEGORIES = ["face", "cat", "house", "chair", "shoe", "bottle"]
HEADER = """[study]
name = "general readme"
output = "out"

[stimuli]
source = "stimuli.csv"
generate = false

[network]
name = "alexnet"
weights = "random"
layers = ["conv2", "fc7"]
device = "cpu"

[figures]
formats = ["png"]
dpi = 50

"""


def _write_files(folder):
    """Images with category and animacy columns; sub-01's volume files; sub-02's RDMs."""
    from brainprobe.stimuli import sample_images

    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    for k, image in enumerate(sample_images(len(CATEGORIES), size=32).images):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            folder / "images" / f"{CATEGORIES[k]}.png")
    pd.DataFrame({"file": [f"images/{c}.png" for c in CATEGORIES], "image_id": CATEGORIES,
                  "category": ["face", "animal", "place", "object", "object", "object"],
                  "animacy": ["animate"] * 2 + ["inanimate"] * 4}).to_csv(folder / "stimuli.csv", index=False)
    (folder / "sub-01").mkdir()
    # 240 voxels per ROI: more than [selection]'s default 100 most reliable
    shape, affine = (14, 10, 5), np.diag([3.0, 3.0, 3.0, 1.0])
    mask = np.zeros(shape, bool)
    mask[1:13, 1:9, :] = True
    labels = np.zeros(shape, np.int16)
    labels[mask & (np.arange(14)[:, None, None] < 7)] = 1  # posterior
    labels[mask & (np.arange(14)[:, None, None] >= 7)] = 2  # anterior
    runs = np.repeat([1, 2, 3], len(CATEGORIES))
    images = np.tile(CATEGORIES, 3)
    pattern = {c: rng.normal(size=shape) for c in CATEGORIES}
    betas = np.stack([pattern[c] + rng.normal(size=shape) for c in images], axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(betas, affine), folder / "sub-01" / "betas.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / "sub-01" / "mask.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), folder / "sub-01" / "atlas.nii.gz")
    pd.DataFrame({"image_id": images, "run": runs}).to_csv(folder / "sub-01" / "trials.csv", index=False)
    (folder / "sub-02").mkdir()
    n_pairs = len(CATEGORIES) * (len(CATEGORIES) - 1) // 2
    np.savez(folder / "sub-02" / "rdms.npz", posterior=rng.random(n_pairs), anterior=rng.random(n_pairs),
             image_ids=np.asarray(CATEGORIES))
    return runs, images


def test_the_general_design_block_runs_as_written(tmp_path, monkeypatch):
    from brainprobe.cli import main
    from brainprobe.data import load_responses
    from brainprobe.pipeline import read_table
    from brainprobe.rsa import rdm

    runs, images = _write_files(tmp_path)
    (tmp_path / "study.toml").write_text(HEADER + BLOCK)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "study.toml", "--quiet"]) in (0, None)
    results = tmp_path / "out" / "results"
    rsa = read_table(results / "general_rsa.csv")
    assert set(rsa["subject"]) == {"sub-01", "sub-02"} and set(rsa["roi"]) == {"posterior", "anterior"}
    assert {"conv2", "fc7", "model:category", "model:animacy"} == set(rsa["candidate"])
    assert rsa["q_fdr"].between(0, 1).all()
    # sub-01's ROI RDMs: crossnobis over its selected voxels' trials, runs as folds
    selection = read_table(results / "selection.csv")
    responses = load_responses("sub-01/betas.nii.gz", pd.read_csv("sub-01/trials.csv"), mask="sub-01/mask.nii.gz")
    rdms = read_table(results / "brain_rdms.csv")
    for roi in ("posterior", "anterior"):
        chosen = selection[(selection["roi"] == roi) & selection["selected"]]["column"].to_numpy()
        expected = rdm(responses.betas[:, chosen], "crossnobis", runs=runs, conditions=images)  # sorted ids
        ours = rdms[(rdms["subject"] == "sub-01") & (rdms["roi"] == roi)]
        position = {c: k for k, c in enumerate(sorted(CATEGORIES))}
        n = len(CATEGORIES)
        index = [(lambda a, b: a * n - a * (a + 1) // 2 + b - a - 1)(*sorted((position[a], position[b])))
                 for a, b in zip(ours["image_a"], ours["image_b"], strict=True)]
        np.testing.assert_allclose(ours["dissimilarity"], expected[index], atol=1e-10)
    group = read_table(results / "general_group.csv")
    assert set(group["roi"]) == {"posterior", "anterior"} and group["n_subjects"].eq(2).all()
    searchlight = read_table(results / "general_searchlight.csv")
    assert len(searchlight) == int(np.asarray(nib.load("sub-01/mask.nii.gz").dataobj).sum())
    assert (tmp_path / "out" / "maps" / "sub-01_searchlight.nii.gz").exists()
    assert "best layer" in (tmp_path / "out" / "report.html").read_text()


def test_the_block_names_only_files_the_test_writes(tmp_path):
    """Guards the test above: every path in the README block is one `_write_files` makes."""
    _write_files(tmp_path)
    for path in ("sub-01/betas.nii.gz", "sub-01/trials.csv", "sub-01/mask.nii.gz", "sub-01/atlas.nii.gz",
                 "sub-02/rdms.npz"):
        assert f'"{path}"' in BLOCK and (tmp_path / path).exists()
    pytest.importorskip("tomllib").loads(HEADER + BLOCK)
