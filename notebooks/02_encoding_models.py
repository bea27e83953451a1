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
# # 2. Sparse encoding models per ROI and layer, and their generalization to AN and AI images
#
# Paper 001, "Forward encoding modeling": for every ROI and network layer, a sparse linear model
# (ROMP) maps the layer's activations to each vertex's responses to the RE images. Tested on the
# adversarial images, a model that generalizes to AI but not AN images says the brain treats AI
# images like their RE sources. The best-predicting layer of each vertex gives Fig. S1.

# %% tags=["parameters"]
n_images = 12
max_iter = 1000
n_perm = 1000
n_boot = 1000
n_nonzero = 5          # atoms per vertex (ROMP's s)
layers = ["stem", "block2", "block4", "block6", "head", "logits"]

# %%
from brainprobe.adversarial import paper_design
from brainprobe.data import simulate_subject
from brainprobe.encoding import ROMP, best_layer, best_layer_proportions, fit_encoding_models, generalization
from brainprobe.models import extract, load_model
from brainprobe.plotting import best_layer_figure, encoding_figure, show
from brainprobe.stimuli import sample_images

model = load_model("efficientnet_lite0", "imagenet")
stimuli = paper_design(model, sample_images(n_images, size=224), an_options={"max_iter": max_iter},
                       ai_options={"max_iter": max_iter}, progress=False)
activations = extract(model, stimuli, layers, progress=False)
activations.summary()

# %% [markdown]
# A simulated subject on the ROI vertices of fs_LR 32k (MMP1.0 V1-V4 and LO). Its ground truth:
# each signal vertex reads a few Gabor-energy features of the image (see `simulate_subject`).

# %%
responses, truth = simulate_subject(stimuli, vertices="rois", seed=2)
signal = {roi: truth.signal[roi].nonzero()[0][:150] for roi in ("V1", "LO")}  # known signal vertices
models = fit_encoding_models(activations, responses, ["V1", "LO"], layers, vertices=signal,
                             estimator=ROMP(n_nonzero=n_nonzero))
len(models), models.layers

# %%
accuracy = generalization(models, activations, responses, n_perm=n_perm, n_boot=n_boot, seed=0)
accuracy[["roi", "layer", "test_kind", "accuracy", "p_perm", "ci95_low", "ci95_high"]].head(12)

# %%
show(encoding_figure(accuracy))

# %%
best = best_layer(models, activations, responses, on="RE", cv=5)
proportions = best_layer_proportions(best, layers)
show(best_layer_figure(proportions))
