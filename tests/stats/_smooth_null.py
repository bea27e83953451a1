"""Null worlds for calibration: spatially smooth vertices, AN and AI images from one distribution.

Vertices lie on a ring; signal loadings and trial noise are white noise smoothed by a Gaussian
of ``fwhm`` vertices (as neighbouring fMRI vertices share signal and noise). Each source image
has features; its AI and its AN image are the source's features plus a perturbation drawn from
one distribution, so under the null the two kinds are exchangeable: any difference between them
is a difference between the particular images drawn.
"""

import numpy as np
import pandas as pd


def smoother(n_vertices: int, fwhm: float) -> np.ndarray:
    sigma = fwhm / np.sqrt(8 * np.log(2))
    offset = np.arange(n_vertices)
    distance = np.minimum(np.abs(offset[:, None] - offset[None, :]), n_vertices - np.abs(offset[:, None] - offset[None, :]))
    kernel = np.exp(-(distance**2) / (2 * sigma**2))
    return kernel / np.sqrt((kernel**2).sum(axis=1, keepdims=True))  # unit variance after smoothing white noise


def kinds_table(n_sources: int) -> pd.DataFrame:
    kinds = ("RE", "AN", "AI")
    return pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(n_sources)],
                         "kind": np.repeat(kinds, n_sources),
                         "source_id": np.tile([f"s{i}" for i in range(n_sources)], 3)})


def null_world(rng, *, n_sources=12, n_features=8, n_vertices=80, fwhm=8.0, noise=1.0, perturbation=1.0,
               ai_shift=0.0):
    """Patterns (3 n_sources, n_vertices) for RE, AN, AI rows (kinds_table order), and the
    features behind them. ``ai_shift`` < 1 plants an effect: AI perturbations that much smaller."""
    kernel = smoother(n_vertices, fwhm)
    regular = rng.normal(size=(n_sources, n_features))
    an = regular + perturbation * rng.normal(size=regular.shape)
    ai = regular + perturbation * (1 - ai_shift) * rng.normal(size=regular.shape)
    features = np.concatenate([regular, an, ai])
    loadings = rng.normal(size=(n_features, n_vertices)) @ kernel
    trial_noise = rng.normal(size=(len(features), n_vertices)) @ kernel
    return features @ loadings + noise * trial_noise, features, loadings
