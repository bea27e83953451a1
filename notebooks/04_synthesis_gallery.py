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
# # 4. Synthesis gallery: inversion, metamers, textures, distortions, MAD competition
#
# Every method optimizes pixels against an objective on a network's layers with one core
# (`brainprobe.synth.optimize_pixels`): inversion and activation maximization (paper 004),
# metamers (000), Gram textures (003), eigen- and principal distortions (002), and, beyond the
# papers, lucid's Fourier parameterization and MAD competition (Wang & Simoncelli 2008). The
# network is EfficientNet-Lite0 with real ImageNet weights.

# %% tags=["parameters"]
n_steps = 300          # optimization steps per method (the papers use more; raise for quality)
size = 224

# %%
import torch

from brainprobe.models import load_model
from brainprobe.plotting import image_grid, show, synthesis_progress
from brainprobe.stimuli import sample_images
from brainprobe.synth import (
    ActivationMaximization,
    Caricature,
    Inversion,
    MADCompetition,
    Metamer,
    PreImagePrior,
    RandomTransforms,
    TextureSynthesis,
    eigendistortions,
    principal_distortions,
)

model = load_model("efficientnet_lite0", "imagenet")
photos = sample_images(3, size=size)
show(image_grid(photos.images, photos.image_ids, title="originals"))

# %% [markdown]
# ## Inversion of an early layer (004, eq. 2) and its normalized reconstruction error

# %%
inversion = Inversion(model, photos.images[:2], "stem", C=300).synthesize(n_steps, progress=False)
show(image_grid(torch.cat([photos.images[:2], inversion.images]),
           [f"original {i}" for i in range(2)] + [f"inverted, error {e:.2f}" for e in inversion.reconstruction_error_]))

# %% [markdown]
# Progress of that synthesis: the energy, the prior and the data term, and the reconstruction
# error of the jittered image at each step (the last 50 steps are 004's second phase, a tenth
# of the rate without jitter).

# %%
show(synthesis_progress(inversion))

# %% [markdown]
# ## Activation maximization of a class (004, eq. 4, section 6)
#
# The data term is divided by M rho^2 (M: the largest response of any unit of the layer over a
# stated reference set, the bundled photographs, the same for every class; rho^2: the
# receptive-field area), so the alpha-norm and TV priors balance it equally for every class;
# jitter is a quarter of the stride, as in the paper. Left: the paper's priors; right: no priors (high-frequency noise).
# The alpha-norm prior keeps the pixels close to the mean, so each image is shown stretched
# to the full range, as the paper's figures are.

# %%
target = 281  # "tabby cat"
maximized = ActivationMaximization(model, "logits", unit=target, size=size).synthesize(n_steps, progress=False)
bare = ActivationMaximization(model, "logits", unit=target, size=size,
                              prior=PreImagePrior.for_model(model, alpha_weight=0, tv_weight=0))
bare.synthesize(n_steps, progress=False)
p = [float(model.predict_proba(x)[0, target]) for x in (maximized.images, bare.images)]


def stretch(images):
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    return (images - low) / (images.amax(dim=(1, 2, 3), keepdim=True) - low)


show(image_grid(stretch(torch.cat([maximized.images, bare.images])),
           [f"priors, p = {p[0]:.2f}", f"no priors, p = {p[1]:.2f}"], columns=2, size=3))

# %% [markdown]
# ### Beyond paper 004: the Fourier parameterization and random transforms (lucid / lucent)
#
# Olah et al. (2017) optimize a decorrelated, 1/f-scaled colour spectrum instead of pixels and
# make the image robust to random translations, scalings and rotations; no explicit prior.
# Adam steps on that spectrum move all frequencies alike, so the class appears as whole
# objects (here tabby fur, eyes and ears) with natural colours.

# %%
fourier = ActivationMaximization(model, "logits", unit=target, size=size, parameterization="fourier",
                                 transforms=RandomTransforms(), prior=PreImagePrior.for_model(model, alpha_weight=0,
                                                                                              tv_weight=0))
fourier.synthesize(n_steps, progress=False)
p_fourier = float(model.predict_proba(fourier.images)[0, target])
show(image_grid(torch.cat([stretch(maximized.images), fourier.images]),
           [f"paper 004 priors, p = {p[0]:.2f}", f"Fourier + transforms, p = {p_fourier:.2f}"], columns=2, size=3))
show(synthesis_progress(fourier, metrics=["response"]))

# %% [markdown]
# ## Caricature (004, section 7): exaggerate what block3 sees in a photograph
#
# The alpha-norm prior pulls the pixels toward the mean, so the result is faint; stretched to
# the full range (as the paper displays its pre-images) the exaggerated structures show.

# %%
caricature = Caricature(model, photos.images[:1], "block3").synthesize(n_steps, progress=False)
show(image_grid(torch.cat([photos.images[:1], caricature.images, stretch(caricature.images)]),
           ["original", "caricature, block3", "caricature, stretched"], columns=3))

# %% [markdown]
# ## Metamers of an early layer (000): same representation, different pixels

# %%
metamer = Metamer(model, photos.images[:2], "stem", lr=0.01, stop_fidelity=0.95).synthesize(n_steps, progress=False)
show(image_grid(torch.cat([photos.images[:2], metamer.images]),
           ["original", "original"] + [f"metamer, fidelity {f:.2f}" for f in metamer.fidelity_]))

# %% [markdown]
# ## Gram-matrix texture synthesis (003) with L-BFGS
#
# The exemplar is a texture (a crop of the bundled immunohistochemistry slide). Layers at
# increasing depth, one per scale up to block3 (block6, as deep as paper 003 goes, added green
# speckle here), paper 003's 1 / (N^2 M) layer weights (each layer standardized by the
# exemplar's RMS activation, the paper's assumption), and Gatys et al.'s start: noise one grey
# level wide around the mean.
# Each image has its own L-BFGS optimizer and line search. `table_` compares the Gram loss
# reached with the loss of another crop of the same slide, a real second sample of the texture.

# %%
slide = sample_images(size=2 * min(size, 128)).images[10]
side_t = min(size, 128)
exemplar, second_crop = slide[None, :, :side_t, :side_t], slide[None, :, side_t:, side_t:]
texture = TextureSynthesis(model, exemplar, ["stem", "block1", "block2", "block3"])
texture.synthesize(max(20, n_steps // 3), progress=False)
print(texture.table_.assign(gram_loss_other_crop=float(texture.loss(second_crop))).to_string(index=False))
show(image_grid(torch.cat([exemplar, second_crop, texture.images]), ["exemplar", "another crop", "texture"],
                columns=3))

# %% [markdown]
# ## Eigendistortions (002): the most and least visible directions for the representation
#
# Both ends of the Fisher spectrum by LOBPCG (each residual is relative to its own eigenvalue,
# and `converged` says whether it met the tolerance). block2 has fewer outputs than the image
# has values, so the bottom of the spectrum is a null space: the "least visible" distortion is
# then one arbitrary invisible direction (a warning and `null_space` say so). Each distortion
# is shown on its own scale, and added to the image. As in
# paper 002 the image is small (at most 96 px), and the network sees it at that resolution
# (a view of the same network whose input size is the image's, so nothing is upsampled).

# %%
import copy

side = min(size, 96)
image = torch.nn.functional.interpolate(photos.images[:1], size=side, mode="bilinear", antialias=True)[0]
native = copy.copy(model)
native.input_size = side
eigen = eigendistortions(native, "block2", image, k=1, max_iter=max(5, n_steps // 2))
print(f"residuals relative to their eigenvalue: top {eigen.top_residuals[0]:.1e} (converged "
      f"{bool(eigen.top_converged[0])}), bottom {eigen.bottom_residuals[0]:.1e}; null space: {eigen.null_space} "
      f"({eigen.n_outputs} outputs, {eigen.n_pixels} image values)")


def own_scale(distortion):
    return distortion / distortion.abs().max()


shown = [0.5 + 0.5 * own_scale(eigen.top[0]), 0.5 + 0.5 * own_scale(eigen.bottom[0]),
         (image + 0.1 * own_scale(eigen.top[0])).clamp(0, 1), (image + 0.1 * own_scale(eigen.bottom[0])).clamp(0, 1)]
show(image_grid(torch.stack(shown), ["most visible", "least visible", "image + most visible", "image + least visible"],
           columns=4))

# %% [markdown]
# ## Principal distortions (002) of two layers: the generalized eigenvectors of their Fisher matrices
#
# The early stem against block3 of the same network, on a 48 px image seen at that resolution
# (24 px in the quick run of the test suite: the dense matrices cost most of this notebook).
# For two representations the optimum solves a generalized eigenproblem; at 48 px (6912
# values) it is solved exactly from the dense Fisher matrices (method `dense`; above 7000
# values LOBPCG, matrix-free, continued by an ascent where it stalls). The residual is
# normalized and the gap to the exact optimum is printed. u is the distortion the stem sees
# most relative to block3 (fine, high-frequency), v the one block3 sees most relative to the
# stem (localized structure on the image's edges).

# %%
side_p = 48 if size >= 128 else 24
tiny = copy.copy(model)
tiny.input_size = side_p
small = torch.nn.functional.interpolate(image[None], size=side_p, mode="bilinear", antialias=True)[0]
principal = principal_distortions([(tiny, "stem"), (tiny, "block3")], small, n_iter=max(5, n_steps // 5))
print(f"{principal.method}: objective {principal.objective:.2f}, converged {principal.converged}, "
      f"normalized residual {principal.residual:.1e}, gap to the exact optimum {principal.objective_gap:.1e}")
show(image_grid(torch.stack([0.5 + 0.5 * own_scale(principal.u), 0.5 + 0.5 * own_scale(principal.v),
                        (small + 0.1 * own_scale(principal.u)).clamp(0, 1),
                        (small + 0.1 * own_scale(principal.v)).clamp(0, 1)]),
           ["u: stem / block3 largest", "v: stem / block3 smallest", "image + u", "image + v"], columns=4))

# %% [markdown]
# ## MAD competition (Wang & Simoncelli 2008) between an early and a deep layer
#
# From the photograph plus noise, four images: for each layer the image it finds closest to the
# photograph ("best") and the one it finds farthest ("worst"), while the other layer's
# distance is held where it was. The early layer's best image removes the noise; the deep
# layer's best keeps it but restores what block4 encodes, and its worst keeps the pixels
# near the photograph while block4 sees something else.

# %%
mad = MADCompetition(photos.images[1], (model, "stem"), (model, "block4"), names=("stem", "block4"),
                     noise_sd=0.1, lr=0.005)
mad.synthesize(n_steps, progress=False)
print(mad.table_.round(3).to_string(index=False))
show(image_grid(torch.cat([photos.images[1:2], mad.initial, mad.images]), ["photograph", "start"] + mad.titles,
           columns=6, size=2.4))
show(synthesis_progress(mad, labels=mad.titles))

# %% [markdown]
# ## One contract: every synthesis object has a `table_`
#
# Pre-images, metamers, textures and MAD share `synthesize`, `n_iter` (steps per image),
# `history`, `save` / `load` and `table_`: what was made and the numbers that say how well.

# %%
for run in (inversion, maximized, caricature, metamer, texture):
    print(run.table_.round(4).to_string(index=False), end="\n\n")
