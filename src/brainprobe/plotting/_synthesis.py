"""Progress of a synthesis: its loss and every recorded per-step number over iterations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["synthesis_progress"]


def _histories(synthesis) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(losses (n_steps, n_images), {name: (n_steps, n_images)}) of a synthesis object or an
    `OptimizationResult`."""
    if hasattr(synthesis, "loss_history"):  # an OptimizationResult
        losses, history = synthesis.loss_history, getattr(synthesis, "aux_history", {})
    elif hasattr(synthesis, "losses"):
        losses, history = synthesis.losses, getattr(synthesis, "history", {}) or {}
    else:
        raise TypeError(f"synthesis: expected a synthesis object (with losses) or an OptimizationResult, "
                        f"found {type(synthesis).__name__}")
    losses = np.asarray(losses, dtype=float)
    if losses.ndim == 1:
        losses = losses[:, None]
    if losses.size == 0:
        raise ValueError("synthesis: no loss history; call synthesize() first")
    return losses, {name: np.asarray(values, dtype=float).reshape(len(values), -1) for name, values in history.items()}


def synthesis_progress(synthesis, *, metrics: Sequence[str] | None = None, labels: Sequence[str] | None = None,
                       log_loss: bool | None = None, size: tuple[float, float] = (3.2, 2.6)):
    """The loss and the recorded objective / fidelity numbers of a synthesis, over iterations.

    One panel for the loss, then one per metric (e.g. ``response`` of an activation
    maximization, ``error`` of an inversion, ``fidelity`` of a metamer, the two distances of a
    MAD competition), each image a line. Metrics recorded only at some steps (a metamer's
    fidelity every ``check_every`` steps) are drawn as points at those steps.

    Parameters
    ----------
    synthesis : synthesis object or OptimizationResult
        Anything with ``losses`` (n_steps,) or (n_steps, n_images) and optionally ``history``
        (dict of name to (n_steps, n_images)), e.g. `Inversion`, `ActivationMaximization`,
        `Metamer`, `MADCompetition`, `TextureSynthesis`; or an `OptimizationResult`
        (``loss_history``, ``aux_history``).
    metrics : sequence of str, optional
        Which history entries to draw (default all that hold a finite value).
    labels : sequence of str, optional
        A legend label per image (e.g. a MAD competition's ``titles``).
    log_loss : bool, optional
        Log scale for the loss; default when the loss is positive and spans over two decades.
    size : (float, float)
        Width and height of one panel, in inches.

    Returns
    -------
    matplotlib Figure

    Examples
    --------
    >>> from brainprobe.plotting import synthesis_progress
    >>> inversion = Inversion(model, photo, "conv1").synthesize(300)  # doctest: +SKIP
    >>> synthesis_progress(inversion).savefig("progress.png")          # doctest: +SKIP
    """
    losses, history = _histories(synthesis)
    if metrics is None:
        metrics = [name for name, values in history.items() if np.isfinite(values).any()]
    unknown = [name for name in metrics if name not in history]
    if unknown:
        raise KeyError(f"metrics: {unknown} not recorded; this synthesis has {sorted(history)}")
    n_images = losses.shape[1]
    if labels is not None and len(labels) != n_images:
        raise ValueError(f"labels: expected one per image ({n_images}), found {len(labels)}")
    panels = [("loss", losses)] + [(name, history[name]) for name in metrics]
    figure, axes = plt.subplots(1, len(panels), figsize=(size[0] * len(panels), size[1]), squeeze=False)
    steps = np.arange(len(losses))
    for ax, (name, values) in zip(axes[0], panels, strict=True):
        for image in range(values.shape[1]):
            finite = np.isfinite(values[:, image])
            sparse = finite.sum() < 0.5 * len(values) and finite.any()  # recorded at some steps only
            label = labels[image] if labels is not None else (f"image {image}" if values.shape[1] > 1 else None)
            ax.plot(steps[finite], values[finite, image], marker="o" if sparse else None, markersize=3, lw=1.2,
                    label=label)
        ax.set_xlabel("iteration")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    loss_values = losses[np.isfinite(losses)]
    if log_loss is None:
        log_loss = bool(loss_values.size) and loss_values.min() > 0 and loss_values.max() > 100 * loss_values.min()
    if log_loss:
        axes[0, 0].set_yscale("log")
    if n_images > 1:
        axes[0, -1].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
