"""The study's figures, drawn from the tidy result tables only.

Every function returns a `matplotlib.figure.Figure`; `save_figure` writes it atomically in
several formats. Colours follow paper 001: RE-AN (AN) blue, RE-AI (AI) red.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._files import replace_atomically

__all__ = [
    "PAIR_COLORS",
    "best_layer_figure",
    "cortical_map",
    "encoding_figure",
    "image_grid",
    "kind_bars",
    "layer_profile",
    "rdm_panels",
    "save_figure",
    "stimulus_grid",
]

PAIR_COLORS = {"RE-AN": "#3b6fb6", "RE-AI": "#d1493f", "AN": "#3b6fb6", "AI": "#d1493f"}


def save_figure(figure, path, formats: Sequence[str] = ("png", "pdf"), *, dpi: int = 150) -> list[Path]:
    """Write ``figure`` as ``path`` with each suffix in ``formats`` (atomically) and close it."""
    path = Path(path)
    written = []
    for fmt in formats:
        target = path.with_suffix(f".{fmt}")
        replace_atomically(target, lambda temporary, fmt=fmt: figure.savefig(temporary, format=fmt, dpi=dpi,
                                                                              bbox_inches="tight"))
        written.append(target)
    plt.close(figure)
    return written


def _one_network(table: pd.DataFrame, figure: str) -> None:
    """A study with [[compare]] networks writes one table for all; a figure draws one network."""
    if table is not None and "network" in table and table["network"].nunique() > 1:
        found = list(dict.fromkeys(table["network"]))
        raise ValueError(f"{figure}: the table holds the rows of networks {found}; draw one at a time, e.g. "
                         f"table[table['network'] == {found[0]!r}]")


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def stimulus_grid(images: np.ndarray, table: pd.DataFrame, *, n_sources: int = 5,
                  kinds: Sequence[str] = ("RE", "AN", "AI")):
    """Fig. 1: RE, AN and AI images of a few sources, with the network's label and probability.

    Parameters
    ----------
    images : array (n_images, height, width, 3) in [0, 1]
        Rows aligned with ``table``.
    table : DataFrame
        ``image_id``, ``kind``, ``source_id``, ``top1_name``, ``p_top1``.
    n_sources : int
        Columns (the first sources in table order).
    """
    sources = list(dict.fromkeys(table.loc[table["kind"] == kinds[0], "source_id"]))[:n_sources]
    figure, axes = plt.subplots(len(kinds), len(sources), figsize=(2.1 * len(sources), 2.5 * len(kinds)), squeeze=False)
    for r, kind in enumerate(kinds):
        for c, source in enumerate(sources):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            match = np.flatnonzero(((table["kind"] == kind) & (table["source_id"] == source)).to_numpy())
            if not len(match):
                ax.set_visible(False)
                continue
            row = table.iloc[match[0]]
            ax.imshow(np.clip(images[match[0]], 0, 1))
            name = str(row.get("top1_name", ""))
            name = name if len(name) <= 18 else name[:17] + "…"
            ax.set_xlabel(f"{name}\np = {row.get('p_top1', np.nan):.2f}", fontsize=8)
            if c == 0:
                ax.set_ylabel(kind, fontsize=12, fontweight="bold")
    figure.suptitle("Stimuli and the network's top-1 label", fontsize=11)
    figure.tight_layout()
    return figure


def image_grid(images, titles: Sequence[str] | None = None, *, columns: int = 4, size: float = 2.2,
               signed: bool = False, title: str = ""):
    """Images in a grid, e.g. a synthesis gallery.

    Parameters
    ----------
    images : tensor or array (n_images, 3, H, W) or (n_images, H, W, 3)
        Pixels in [0, 1]; with ``signed=True`` any values, shown around mid-grey with a shared
        scale (distortions).
    titles : sequence of str, optional
    columns : int
    """
    array = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    if array.ndim == 4 and array.shape[1] == 3 and array.shape[-1] != 3:
        array = array.transpose(0, 2, 3, 1)
    if signed:
        scale = np.abs(array).max() or 1.0
        array = 0.5 + 0.5 * array / scale
    n = len(array)
    columns = min(columns, n)
    rows = int(np.ceil(n / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(np.clip(array[i], 0, 1))
            if titles is not None and i < len(titles):
                ax.set_title(str(titles[i]), fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _difference_mark(p: float, direction: str) -> str:
    """Stars of a difference test and its direction in short ("AI>AN **"); "" when p >= .05."""
    stars = _stars(p)
    if not stars:
        return ""
    short = direction.replace("RE-", "").replace(" ", "")
    return f"{short} {stars}"


def _ci_columns(table: pd.DataFrame, ci: str) -> tuple[str, str] | None:
    low, high = f"{ci}_low", f"{ci}_high"
    return (low, high) if low in table and high in table else None


def kind_bars(table: pd.DataFrame, difference: pd.DataFrame | None = None, *, unit: str = "roi",
              panel: str = "subject", ci: str = "ci68", pairs: Sequence[str] = ("RE-AN", "RE-AI"),
              title: str = "RE-AN and RE-AI similarity"):
    """Fig. 3 / S2: similarity bars per ROI with CI error bars and significance asterisks.

    Parameters
    ----------
    table : DataFrame
        `brainprobe.rsa.kind_similarity` rows with ``unit`` and ``panel`` columns.
    unit : str
        Column on the x-axis (``roi``).
    panel : str
        One subplot per value (``subject``).
    difference : DataFrame, optional
        `brainprobe.rsa.kind_difference` rows (same ``unit`` and ``panel`` columns): a bracket
        over each ROI's two bars marks a significant AI-vs-AN test with its direction and stars.
    ci : str
        Prefix of the interval columns (``ci68``: the study's bars for ROIs).
    """
    panels = list(dict.fromkeys(table[panel])) if panel in table else [None]
    units = list(dict.fromkeys(table[unit]))
    figure, axes = plt.subplots(1, len(panels), figsize=(0.9 * len(units) * len(pairs) / 2 + 2.2 * len(panels) + 1, 3.4),
                                sharey=True, squeeze=False)
    width = 0.8 / len(pairs)
    columns = _ci_columns(table, ci)
    for ax, value in zip(axes[0], panels, strict=True):
        part = table if value is None else table[table[panel] == value]
        for k, pair in enumerate(pairs):
            rows = part[part["pair"] == pair].set_index(unit).reindex(units)
            x = np.arange(len(units)) + (k - (len(pairs) - 1) / 2) * width
            heights = rows["similarity"].to_numpy(float)
            error = None
            if columns:
                error = np.abs(np.vstack([heights - rows[columns[0]].to_numpy(float), rows[columns[1]].to_numpy(float) - heights]))
            ax.bar(x, heights, width, yerr=error, color=PAIR_COLORS.get(pair), label=pair, capsize=2, ecolor="0.2")
            if "p_perm" in rows:
                tops = heights if columns is None else rows[columns[1]].to_numpy(float)
                for xi, top, p in zip(x, tops, rows["p_perm"].to_numpy(float), strict=True):
                    mark = _stars(p)
                    if mark:
                        ax.text(xi, max(top, 0) + 0.01, mark, ha="center", va="bottom", fontsize=9)
        if difference is not None:
            tests = difference if value is None or panel not in difference else difference[difference[panel] == value]
            _bracket_differences(ax, tests.set_index(unit).reindex(units), part, unit, units, columns)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_xticks(np.arange(len(units)), units)
        if value is not None:
            ax.set_title(str(value))
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("RDM similarity (Spearman)")
    axes[0, -1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    note = "; brackets: AI vs AN bootstrap test" if difference is not None else ""
    figure.suptitle(f"{title}\n(error bars: {ci[2:]}% CI; stars over bars: permutation test vs 0{note}; "
                    "* p < .05, ** p < .01, *** p < .001)", fontsize=9)
    figure.tight_layout()
    return figure


def _bracket_differences(ax, tests: pd.DataFrame, part: pd.DataFrame, unit: str, units: list, columns) -> None:
    """A bracket over each unit's bars with the difference test's direction and stars."""
    high = columns[1] if columns else "similarity"
    tops = part.groupby(unit)[high].max().reindex(units).to_numpy(float)
    for xi, (top, p, direction) in enumerate(zip(tops, tests["p_boot"].to_numpy(float),
                                                 tests["direction"].astype(str).to_numpy(), strict=True)):
        mark = _difference_mark(p, direction)
        if not mark or not np.isfinite(top):
            continue
        y = max(top, 0) + 0.16  # above the permutation stars drawn over each bar
        ax.plot([xi - 0.2, xi - 0.2, xi + 0.2, xi + 0.2], [y - 0.03, y, y, y - 0.03], color="0.2", linewidth=0.8)
        ax.text(xi, y + 0.01, mark, ha="center", va="bottom", fontsize=7)
        ax.set_ylim(top=max(ax.get_ylim()[1], y + 0.15))


def layer_profile(table: pd.DataFrame, trend: pd.DataFrame | None = None, difference: pd.DataFrame | None = None, *,
                  ci: str = "ci95", pairs: Sequence[str] = ("RE-AN", "RE-AI"), network: str = ""):
    """Fig. 5: RE-AN and RE-AI similarity across layers with CIs and the Mann-Kendall trend.

    ``difference`` (`brainprobe.rsa.kind_difference` rows with a ``layer`` column) adds, above
    each layer, the direction and stars of a significant AI-vs-AN bootstrap test.
    """
    _one_network(table, "layer_profile")
    _one_network(trend, "layer_profile (trend)")
    layers = list(dict.fromkeys(table["layer"]))
    figure, ax = plt.subplots(figsize=(max(4.5, 0.6 * len(layers) + 1.5), 3.4))
    columns = _ci_columns(table, ci)
    x = np.arange(len(layers))
    for pair in pairs:
        rows = table[table["pair"] == pair].set_index("layer").reindex(layers)
        y = rows["similarity"].to_numpy(float)
        label = pair
        if trend is not None and (trend["pair"] == pair).any():
            t = trend[trend["pair"] == pair].iloc[0]
            which = f", {t['p_method']}" if "p_method" in t else ""
            label = f"{pair} (Mann-Kendall tau = {t['tau']:.2f}, p = {t['p']:.3g}{which})"
        error = None
        if columns:
            error = np.abs(np.vstack([y - rows[columns[0]].to_numpy(float), rows[columns[1]].to_numpy(float) - y]))
        ax.errorbar(x, y, yerr=error, marker="o", color=PAIR_COLORS.get(pair), label=label, capsize=3)
        if "p_perm" in rows:
            for xi, yi, p in zip(x, y, rows["p_perm"].to_numpy(float), strict=True):
                if _stars(p):
                    ax.text(xi, yi, "  " + _stars(p), color=PAIR_COLORS.get(pair), fontsize=8, va="bottom")
    if difference is not None:
        _one_network(difference, "layer_profile (difference)")
        tests = difference.set_index("layer").reindex(layers)
        for xi, p, direction in zip(x, tests["p_boot"].to_numpy(float), tests["direction"].astype(str), strict=True):
            mark = _difference_mark(p, direction)
            if mark:
                ax.text(xi, 1.01, mark.replace(" ", "\n"), transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=6, linespacing=0.9)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(x, layers, rotation=45 if len(layers) > 8 else 0)
    ax.set_xlabel("layer")
    ax.set_ylabel("RDM similarity (Spearman)")
    marks = "; top: AI vs AN bootstrap test" if difference is not None else ""
    ax.set_title(f"{network} layers: RE-AN and RE-AI similarity ({ci[2:]}% CI{marks})".strip(), fontsize=9, pad=28)
    ax.legend(frameon=False, fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return figure


def encoding_figure(table: pd.DataFrame, *, kinds: Sequence[str] = ("AN", "AI"), ci: str = "ci95"):
    """Fig. 6: accuracy of RE-trained encoding models on AN and AI images, per ROI x layer.

    One panel per ROI (rows: subjects), lines over layers, 95% vertex-subsample CIs; with a
    ``p_compare`` column (`brainprobe.encoding.generalization`), the direction and stars of a
    significant AI-vs-AN comparison above each layer.
    """
    _one_network(table, "encoding_figure")
    subjects = list(dict.fromkeys(table["subject"]))
    rois = list(dict.fromkeys(table["roi"]))
    layers = list(dict.fromkeys(table["layer"]))
    figure, axes = plt.subplots(len(subjects), len(rois), figsize=(2.6 * len(rois) + 0.5, 2.3 * len(subjects) + 0.6),
                                sharex=True, sharey=True, squeeze=False)
    columns = _ci_columns(table, ci)
    x = np.arange(len(layers))
    for i, subject in enumerate(subjects):
        for j, roi in enumerate(rois):
            ax = axes[i, j]
            part = table[(table["subject"] == subject) & (table["roi"] == roi)]
            for kind in kinds:
                rows = part[part["test_kind"] == kind].set_index("layer").reindex(layers)
                y = rows["accuracy"].to_numpy(float)
                error = None
                if columns:
                    error = np.abs(np.vstack([y - rows[columns[0]].to_numpy(float), rows[columns[1]].to_numpy(float) - y]))
                ax.errorbar(x, y, yerr=error, marker="o", markersize=3, color=PAIR_COLORS.get(kind), label=kind, capsize=2)
            if "p_compare" in part:
                compared = part.dropna(subset=["p_compare"]).set_index("layer").reindex(layers)
                for xi, p, direction in zip(x, compared["p_compare"].to_numpy(float),
                                            compared["direction"].astype(str), strict=True):
                    mark = _difference_mark(p, direction)
                    if mark:
                        ax.text(xi, 1.01, mark.replace(" ", "\n"), transform=ax.get_xaxis_transform(),
                                ha="center", va="bottom", fontsize=5, linespacing=0.9)
            ax.axhline(0, color="0.3", linewidth=0.8)
            if i == 0:
                ax.set_title(roi, pad=18 if "p_compare" in table else 6)
            if j == 0:
                ax.set_ylabel(f"{subject}\naccuracy (r)")
            ax.set_xticks(x, layers, rotation=90, fontsize=7)
            ax.spines[["top", "right"]].set_visible(False)
    axes[0, -1].legend(frameon=False, fontsize=8)
    figure.suptitle("Encoding models trained on RE images, tested on AN and AI images\n(95% CI; marks: AI vs AN "
                    "vertex-subsample test, * p < .05, ** p < .01, *** p < .001)", fontsize=9)
    figure.tight_layout()
    return figure


def best_layer_figure(proportions: pd.DataFrame):
    """Fig. S1: proportion of each ROI's vertices best predicted by each layer.

    One panel per test kind (``test_kind``: AN, AI, as in the supplement; one panel without that
    column); per ROI one bar per layer: the mean over measurements (subject x repeat) with the
    standard error across them; the number of measurements is in the title.
    """
    _one_network(proportions, "best_layer_figure")
    layers = list(dict.fromkeys(proportions["layer"]))
    rois = list(dict.fromkeys(proportions["roi"]))
    kinds = list(dict.fromkeys(proportions["test_kind"])) if "test_kind" in proportions else [None]
    figure, axes = plt.subplots(1, len(kinds), figsize=(max(3.6, 0.55 * len(rois) * len(layers) / 4 + 1.5) * len(kinds), 3.6),
                                sharey=True, squeeze=False)
    colors = plt.get_cmap("turbo")(np.linspace(0.08, 0.92, len(layers)))  # ordered and distinct for 8 layers
    width = 0.85 / len(layers)
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = proportions if kind is None else proportions[proportions["test_kind"] == kind]
        grouped = part.groupby(["roi", "layer"], sort=False)["proportion"]
        mean = grouped.mean().unstack("layer").reindex(index=rois, columns=layers)
        sem = grouped.sem().unstack("layer").reindex(index=rois, columns=layers)
        n = part.groupby(["subject", "measurement"]).ngroups
        for k, (layer, color) in enumerate(zip(layers, colors, strict=True)):
            x = np.arange(len(rois)) + (k - (len(layers) - 1) / 2) * width
            ax.bar(x, mean[layer].to_numpy(float), width, yerr=np.nan_to_num(sem[layer].to_numpy(float)), color=color,
                   label=layer, error_kw={"elinewidth": 0.6, "capsize": 1})
        ax.set_xticks(np.arange(len(rois)), rois)
        ax.set_title(f"{kind} images" if kind else "", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("proportion of vertices")
    axes[0, -1].legend(frameon=False, fontsize=7, bbox_to_anchor=(1.0, 1.0), loc="upper left", title="best layer")
    figure.suptitle(f"Best-predicting layer per vertex (models trained on RE images)\nmean ± s.e.m. over n = {n} "
                    "measurements (subject x repeat)", fontsize=9)
    figure.tight_layout()
    return figure


def rdm_panels(rdms: Mapping[str, np.ndarray], *, labels: Sequence[str] | None = None, columns: int = 3):
    """Square RDMs side by side, one colour scale per panel (rank-transformed for display)."""
    from scipy.stats import rankdata

    names = list(rdms)
    rows = int(np.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, min(columns, len(names)), figsize=(2.8 * min(columns, len(names)), 2.8 * rows),
                                squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        square = np.asarray(rdms[name], dtype=float)
        upper = np.triu_indices(len(square), 1)
        ranked = np.zeros_like(square)
        ranked[upper] = rankdata(square[upper]) / len(upper[0])
        ranked = ranked + ranked.T
        image = ax.imshow(ranked, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None and len(labels) == len(square) and len(square) <= 20:
            ax.set_yticks(np.arange(len(square)), labels, fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.colorbar(image, ax=axes, shrink=0.7, label="dissimilarity (percentile)")
    return figure


def cortical_map(maps: Mapping[str, Mapping[str, np.ndarray]], meshes: Mapping[str, object], *,
                 views: Sequence[str] = ("lateral", "medial"), vmax: float | None = None,
                 cmap: str = "RdBu_r", title: str = ""):
    """Fig. 4: values per vertex drawn on a surface (nilearn), one row per map.

    Parameters
    ----------
    maps : mapping of row title to mapping of hemi (``"L"``/``"R"``) to array (n_mesh_vertices,)
        NaN where there is no value.
    meshes : mapping of hemi to a mesh with ``coordinates`` and ``faces`` (inflated or flat)
    views : sequence of str
        nilearn views per hemisphere (a flat mesh is drawn from ``"dorsal"``).
    """
    from nilearn import plotting

    hemis = [h for h in ("L", "R") if h in meshes]
    names = list(maps)
    values = np.concatenate([np.asarray(maps[n][h], float) for n in names for h in hemis if h in maps[n]])
    vmax = float(np.nanmax(np.abs(values))) if vmax is None else vmax
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    panels = [(h, v) for h in hemis for v in views]
    figure = plt.figure(figsize=(2.6 * len(panels) + 0.8, 2.4 * len(names) + 0.6))
    for i, name in enumerate(names):
        for j, (hemi, view) in enumerate(panels):
            ax = figure.add_subplot(len(names), len(panels), i * len(panels) + j + 1, projection="3d")
            mesh = meshes[hemi]
            data = np.nan_to_num(np.asarray(maps[name].get(hemi, np.full(mesh.n_vertices, np.nan)), float), nan=0.0)
            plotting.plot_surf_stat_map((mesh.coordinates, mesh.faces), data, hemi="left" if hemi == "L" else "right",
                                        view=view, axes=ax, figure=figure, colorbar=False, cmap=cmap,
                                        vmin=-vmax, vmax=vmax, symmetric_cbar=True)
            ax.set_title(f"{name} · {hemi} {view}", fontsize=8)
            for artist in ax.collections:  # 60k triangles as vectors make a 10 MB PDF
                artist.set_rasterized(True)
    mappable = plt.cm.ScalarMappable(norm=plt.Normalize(-vmax, vmax), cmap=cmap)
    figure.colorbar(mappable, ax=figure.axes, shrink=0.6, label="RDM similarity")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure
