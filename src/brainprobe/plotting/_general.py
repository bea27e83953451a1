"""Figures of the general design: layer profiles with the noise ceiling, the best-layer map."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ._figures import _journal, _width

__all__ = ["ceiling_profile", "best_layer_map"]

CEILING_COLOR = "#bbbbbb"


@_journal
def ceiling_profile(table: pd.DataFrame, *, title: str = "", columns: str | float = "double"):
    """RDM correlation of every layer, one panel per ROI, over the ROI's noise-ceiling band.

    Parameters
    ----------
    table : DataFrame
        ``general_group`` rows (``roi``, ``candidate``, ``mean``, ``sem``, ``ceiling_lower``,
        ``ceiling_upper``, ``is_layer``) or ``general_rsa`` rows of one subject (``r``,
        ``ci_low``, ``ci_high``). Layers in the table's order; model RDMs (not layers) drawn as
        horizontal dashed lines.
    """
    rois = list(dict.fromkeys(table["roi"]))
    group = "mean" in table
    n = len(rois)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    figure, axes = plt.subplots(rows, cols, figsize=(_width(columns), 1.9 * rows + 0.3), squeeze=False, sharey=True)
    for ax, roi in zip(axes.flat, rois, strict=False):
        part = table[table["roi"] == roi]
        layers = part[part["is_layer"].astype(bool)]
        models = part[~part["is_layer"].astype(bool)]
        x = np.arange(len(layers))
        value = layers["mean" if group else "r"].to_numpy(float)
        if group:
            low, high = value - layers["sem"].to_numpy(float), value + layers["sem"].to_numpy(float)
            lower, upper = float(part["ceiling_lower"].iloc[0]), float(part["ceiling_upper"].iloc[0])
            if np.isfinite(lower):
                ax.axhspan(lower, upper, color=CEILING_COLOR, alpha=0.6, lw=0, label="noise ceiling")
        else:
            low, high = layers["ci_low"].to_numpy(float), layers["ci_high"].to_numpy(float)
        ax.fill_between(x, low, high, color="#3b6fb6", alpha=0.25, lw=0)
        ax.plot(x, value, "o-", color="#3b6fb6", ms=3, lw=1, label="layers")
        best = int(np.nanargmax(value)) if len(value) else None
        if best is not None:
            ax.plot(x[best], value[best], "*", color="#d1493f", ms=8, label="best layer")
        for k, (_, model) in enumerate(models.iterrows()):
            level = float(model["mean" if group else "r"])
            ax.axhline(level, ls="--", lw=0.8, color=f"C{k + 2}", label=str(model["candidate"]))
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(x, layers["candidate"].tolist(), rotation=60, ha="right", fontsize=5)
        ax.set_title(roi)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("RDM correlation" + (" (mean ± s.e.m.)" if group else " (95% CI over images)"))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper right", fontsize=6, frameon=False)
    if title:
        figure.suptitle(title, x=0.02, ha="left")
    figure.tight_layout(rect=(0, 0, 0.85, 1))
    return figure


@_journal
def best_layer_map(table: pd.DataFrame, *, value: str = "mean", columns: str | float = "double"):
    """ROI x layer map of RDM correlations, the best layer of each ROI outlined.

    Parameters
    ----------
    table : DataFrame
        ``general_group`` (``value="mean"``) or one subject's ``general_rsa`` (``value="r"``)
        rows; layers only (``is_layer``) are drawn.
    """
    layers_only = table[table["is_layer"].astype(bool)]
    grid = layers_only.pivot_table(index="roi", columns="candidate", values=value, sort=False)
    grid = grid.loc[list(dict.fromkeys(layers_only["roi"])), list(dict.fromkeys(layers_only["candidate"]))]
    data = grid.to_numpy(float)
    figure, ax = plt.subplots(figsize=(_width(columns), 0.35 * len(grid) + 1.3))
    limit = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
    image = ax.imshow(data, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i, row in enumerate(data):
        j = int(np.nanargmax(row))
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=1.5))
    ax.set_xticks(np.arange(data.shape[1]), grid.columns.tolist(), rotation=60, ha="right", fontsize=5)
    ax.set_yticks(np.arange(data.shape[0]), grid.index.tolist())
    figure.colorbar(image, ax=ax, label="RDM correlation", shrink=0.8)
    return figure
