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
# # 4. Synthesis gallery: inversion, metamers, textures, distortions
#
# Every method optimizes pixels against an objective on a network's layers with one core
# (`brainprobe.synth.optimize_pixels`): inversion and activation maximization (paper 004),
# metamers (000), Gram textures (003), eigen- and principal distortions (002). The network is
# EfficientNet-Lite0 with real ImageNet weights.

# %% tags=["parameters"]
n_steps = 300          # optimization steps per method (the papers use more; raise for quality)
size = 224

# %%
import torch

from brainprobe.models import load_model
from brainprobe.plotting import image_grid
from brainprobe.stimuli import sample_images
from brainprobe.synth import (
    ActivationMaximization,
    Inversion,
    Metamer,
    TextureSynthesis,
    eigendistortions,
    principal_distortions,
)

model = load_model("efficientnet_lite0", "imagenet")
photos = sample_images(3, size=size)
image_grid(photos.images, photos.image_ids, title="originals");

# %% [markdown]
# ## Inversion of an early layer (004, eq. 2) and its normalized reconstruction error

# %%
inversion = Inversion(model, photos.images[:2], "stem", C=300).synthesize(n_steps, progress=False)
image_grid(torch.cat([photos.images[:2], inversion.images]),
           [f"original {i}" for i in range(2)] + [f"inverted, error {e:.2f}" for e in inversion.reconstruction_error_]);

# %% [markdown]
# ## Activation maximization of one channel (004, eq. 4)

# %%
maximized = ActivationMaximization(model, "block3", channel=7).synthesize(n_steps, progress=False)
image_grid(maximized.images, ["block3, channel 7"], columns=1, size=3);

# %% [markdown]
# ## Metamers of an early layer (000): same representation, different pixels

# %%
metamer = Metamer(model, photos.images[:2], "stem", lr=0.01, stop_fidelity=0.95).synthesize(n_steps, progress=False)
image_grid(torch.cat([photos.images[:2], metamer.images]),
           ["original", "original"] + [f"metamer, fidelity {f:.2f}" for f in metamer.fidelity_]);

# %% [markdown]
# ## Gram-matrix texture synthesis (003) with L-BFGS

# %%
texture = TextureSynthesis(model, photos.images[2:3], ["stem", "block1", "block2"])
texture.synthesize(max(5, n_steps // 10), progress=False)
image_grid(torch.cat([photos.images[2:3], texture.images]), ["source", "texture"], columns=2);

# %% [markdown]
# ## Eigendistortions (002): the most and least visible directions for the representation

# %%
image = photos.images[0]
eigen = eigendistortions(model, "block2", image, k=1, n_iter=max(10, n_steps // 10))
image_grid(torch.stack([eigen.top[0], eigen.bottom[0]]), ["most visible", "least visible"], signed=True, columns=2);

# %%
alexnet = load_model("alexnet", None, init="kaiming")
principal = principal_distortions([(model, "block2"), (model, "block4"), (alexnet, "conv2")], image,
                                  n_iter=max(10, n_steps // 10))
image_grid(torch.stack([principal.u, principal.v]), ["u", "v"], signed=True, columns=2);
