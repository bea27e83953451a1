"""The study's figures, drawn from the tidy result tables only.

Every function returns a `matplotlib.figure.Figure`; `save_figure` writes it atomically in
several formats. Colours follow paper 001: RE-AN (AN) blue, RE-AI (AI) red.

Figures are drawn for a journal page: one column (89 mm) or two (183 mm) wide, 7 pt text
(6 pt ticks), TrueType (Type 42) fonts in PDF and PostScript so the text stays editable, 300 dpi
for raster output (`JOURNAL_STYLE`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._files import replace_atomically

__all__ = [
    "COLUMN_WIDTH_MM",
    "JOURNAL_STYLE",
    "KIND_COLORS",
    "PAIR_COLORS",
    "best_layer_figure",
    "cortical_map",
    "encoding_figure",
    "image_grid",
    "kind_bars",
    "layer_profile",
    "rdm_figure",
    "rdm_panels",
    "save_figure",
    "stimulus_grid",
]

PAIR_COLORS = {"RE-AN": "#3b6fb6", "RE-AI": "#d1493f", "AN": "#3b6fb6", "AI": "#d1493f"}
KIND_COLORS = {"RE": "#333333", "AN": PAIR_COLORS["AN"], "AI": PAIR_COLORS["AI"]}

# journals' column widths (Nature: 89 and 183 mm; Cell, eLife and PNAS are within a few mm)
COLUMN_WIDTH_MM = {"single": 89.0, "double": 183.0}
MM = 1 / 25.4  # inches

JOURNAL_STYLE = {
    "pdf.fonttype": 42,  # TrueType: text stays text (editable, searchable), not Type 3 outlines
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 300,
    "font.family": "sans-serif",
    "font.sans-serif": ["Arial", "Helvetica", "DejaVu Sans"],
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "legend.title_fontsize": 6,
    "figure.titlesize": 7,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "errorbar.capsize": 1.5,
}


def _width(columns: str | float) -> float:
    """A figure width in inches: ``"single"`` or ``"double"`` journal column, or mm."""
    return (COLUMN_WIDTH_MM[columns] if isinstance(columns, str) else float(columns)) * MM


def _journal(function):
    """Draw under `JOURNAL_STYLE` (font sizes are fixed when the text is made)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with plt.rc_context(JOURNAL_STYLE):
            return function(*args, **kwargs)
    return wrapper


def save_figure(figure, path, formats: Sequence[str] = ("png", "pdf"), *, dpi: int = 300) -> list[Path]:
    """Write ``figure`` as ``path`` with each suffix in ``formats`` (atomically) and close it.

    PDF and PostScript get TrueType (Type 42) fonts, SVG keeps its text as text; ``dpi`` sets
    the resolution of PNG output and of the raster parts (images, cortical meshes) of the rest.
    """
    path = Path(path)
    written = []
    with plt.rc_context({k: v for k, v in JOURNAL_STYLE.items() if k.endswith("fonttype")}):
        for fmt in formats:
            target = path.with_suffix(f".{fmt}")
            replace_atomically(target, lambda temporary, fmt=fmt: figure.savefig(temporary, format=fmt, dpi=dpi,
                                                                                  bbox_inches="tight", pad_inches=0.02))
            written.append(target)
    plt.close(figure)
    return written


def _one_network(table: pd.DataFrame, figure: str) -> None:
    """A study with [[compare]] networks writes one table for all; a figure draws one network."""
    if table is not None and "network" in table and table["network"].nunique() > 1:
        found = list(dict.fromkeys(table["network"]))
        raise ValueError(f"{figure}: the table holds the rows of networks {found}; draw one at a time, e.g. "
                         f"table[table['network'] == {found[0]!r}]")


def _similarity_label(table: pd.DataFrame) -> str:
    """The y label of an RDM-similarity axis, naming the comparison the table used."""
    methods = sorted(set(table["method"].astype(str))) if "method" in table else []
    return f"RDM similarity ({', '.join(m.capitalize() for m in methods)})" if methods else "RDM similarity"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""



STARS = "* p < .05, ** p < .01, *** p < .001"


def _p_text(p: float) -> str:
    """``p < .001`` below 0.001 (not 0.000999), else ``p = `` three significant digits."""
    return "p < .001" if p < 0.001 else f"p = {p:.3g}"


@_journal
def stimulus_grid(images: np.ndarray, table: pd.DataFrame, *, n_sources: int = 5,
                  kinds: Sequence[str] = ("RE", "AN", "AI"), columns: str | float = "double"):
    """Fig. 1: RE, AN and AI images of a few sources, with the network's top-1 class and P(class).

    Parameters
    ----------
    images : array (n_images, height, width, 3) in [0, 1], or mapping of image_id to array
        Rows aligned with ``table``; or only the images drawn (e.g. ``uint8`` ones read back from
        ``results/``), by id.
    table : DataFrame
        ``image_id``, ``kind``, ``source_id``, ``top1_name``, ``p_top1``.
    n_sources : int
        Columns (the first sources in table order); the title says which of how many are shown.
    columns : {"single", "double"} or float
        Figure width: a journal column or two, or mm.
    """
    all_sources = list(dict.fromkeys(table.loc[table["kind"] == kinds[0], "source_id"]))
    sources = all_sources[:n_sources]
    width = _width(columns)
    panel = width / max(len(sources), 1)
    figure, axes = plt.subplots(len(kinds), len(sources), figsize=(width, panel * len(kinds) * 1.22 + 0.35),
                                squeeze=False)
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
            pixels = images[row["image_id"]] if isinstance(images, Mapping) else images[match[0]]
            pixels = pixels / 255.0 if np.asarray(pixels).dtype == np.uint8 else pixels
            ax.imshow(np.clip(pixels, 0, 1), interpolation="none")  # PDF: the pixels, not a resampling
            name = str(row.get("top1_name", ""))
            name = name if len(name) <= 20 else name[:19] + "…"
            ax.set_xlabel(f"{name}\nP(class) = {row.get('p_top1', np.nan):.2f}", fontsize=6, labelpad=2)
            if r == 0:
                ax.set_title(str(source).removeprefix("RE/"), fontsize=6, pad=2)  # the row says it is RE
            if c == 0:
                ax.set_ylabel(kind, fontsize=8, fontweight="bold")
    shown = f"{len(sources)} of {len(all_sources)} source images" if len(sources) < len(all_sources) else \
        f"all {len(sources)} source images"
    kinds_shown = [k for k in ("AN", "AI") if k in set(table["kind"])]
    partners = f" and their {' and '.join(kinds_shown)} images" if kinds_shown else ""
    figure.suptitle(f"RE images ({shown}, named on top){partners}; under each: the network's "
                    "top-1 class and its probability P(class)", fontsize=7)
    figure.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.3)
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


def _crowded(n_positions: int, per_inch: float = 0.0) -> bool:
    """True when "AI>AN" labels side by side would overprint: many layers, or more than ~4 per inch."""
    return n_positions > 8 or per_inch > 4


def _direction_label(ax, x: float, mark: str, n_positions: int, per_inch: float = 0.0) -> None:
    """A difference test's direction and stars above position ``x``: two short lines, or one line
    turned upright where neighbouring labels would overprint ("AI>ANAI>AN")."""
    upright = _crowded(n_positions, per_inch)
    ax.text(x, 1.01, mark if upright else mark.replace(" ", "\n"), transform=ax.get_xaxis_transform(), ha="center",
            va="bottom", fontsize=5, linespacing=0.9, rotation=90 if upright else 0)


def _ci_columns(table: pd.DataFrame, ci: str) -> tuple[str, str] | None:
    low, high = f"{ci}_low", f"{ci}_high"
    return (low, high) if low in table and high in table else None



@_journal
def kind_bars(table: pd.DataFrame, difference: pd.DataFrame | None = None, *, unit: str = "roi",
              panel: str = "subject", ci: str = "ci68", pairs: Sequence[str] = ("RE-AN", "RE-AI"),
              title: str = "RE-AN and RE-AI similarity", columns: str | float | None = None):
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
    columns : {"single", "double"} or float, optional
        Figure width (a journal column or two, or mm); default: what the panels need.
    """
    panels = list(dict.fromkeys(table[panel])) if panel in table else [None]
    units = list(dict.fromkeys(table[unit]))
    needed = 25 + 6 * len(units) * len(pairs) * len(panels)  # mm: axis labels and legend + ~6 mm per bar
    width = _width(columns if columns is not None else "single" if needed <= COLUMN_WIDTH_MM["single"] else "double")
    figure, axes = plt.subplots(1, len(panels), figsize=(width, 2.2), sharey=True, squeeze=False)
    bar_width = 0.8 / len(pairs)
    ci_columns = _ci_columns(table, ci)
    for ax, value in zip(axes[0], panels, strict=True):
        part = table if value is None else table[table[panel] == value]
        for k, pair in enumerate(pairs):
            rows = part[part["pair"] == pair].set_index(unit).reindex(units)
            x = np.arange(len(units)) + (k - (len(pairs) - 1) / 2) * bar_width
            heights = rows["similarity"].to_numpy(float)
            error = None
            if ci_columns:
                error = np.abs(np.vstack([heights - rows[ci_columns[0]].to_numpy(float),
                                          rows[ci_columns[1]].to_numpy(float) - heights]))
            ax.bar(x, heights, bar_width, yerr=error, color=PAIR_COLORS.get(pair), label=pair, ecolor="0.2",
                   error_kw={"elinewidth": 0.6})
            if "p_perm" in rows:
                tops = heights if ci_columns is None else rows[ci_columns[1]].to_numpy(float)
                for xi, top, p in zip(x, tops, rows["p_perm"].to_numpy(float), strict=True):
                    mark = _stars(p)
                    if mark:
                        ax.text(xi, max(top, 0) + 0.01, mark, ha="center", va="bottom", fontsize=6)
        if difference is not None:
            tests = difference if value is None or panel not in difference else difference[difference[panel] == value]
            _bracket_differences(ax, tests.set_index(unit).reindex(units), part, unit, units, ci_columns)
        ax.axhline(0, color="0.3", linewidth=0.6)
        ax.set_xticks(np.arange(len(units)), units)
        if value is not None:
            ax.set_title(str(value))
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel(_similarity_label(table))
    axes[0, -1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    note = (f"; brackets: AI vs AN {_difference_test_name(difference)} test" if difference is not None else "")
    figure.suptitle(f"{title}\n(bars: {ci[2:]}% CI; stars over bars: permutation test vs 0{note}; {STARS})",
                    fontsize=6)
    figure.tight_layout(pad=0.3)
    return figure


def _bracket_differences(ax, tests: pd.DataFrame, part: pd.DataFrame, unit: str, units: list, columns) -> None:
    """A bracket over each unit's bars with the difference test's direction and stars."""
    high = columns[1] if columns else "similarity"
    tops = part.groupby(unit)[high].max().reindex(units).to_numpy(float)
    for xi, (top, p, direction) in enumerate(zip(tops, tests["p_relabel" if "p_relabel" in tests else "p_boot"].to_numpy(float),
                                                 tests["direction"].astype(str).to_numpy(), strict=True)):
        mark = _difference_mark(p, direction)
        if not mark or not np.isfinite(top):
            continue
        y = max(top, 0) + 0.16  # above the permutation stars drawn over each bar
        ax.plot([xi - 0.2, xi - 0.2, xi + 0.2, xi + 0.2], [y - 0.03, y, y, y - 0.03], color="0.2", linewidth=0.6)
        # direction over stars, 5 pt: one line ("AI>AN **") is wider than an ROI's two bars
        ax.text(xi, y + 0.01, mark.replace(" ", "\n"), ha="center", va="bottom", fontsize=5, linespacing=0.9)
        ax.set_ylim(top=max(ax.get_ylim()[1], y + 0.2))


@_journal
def layer_profile(table: pd.DataFrame, trend: pd.DataFrame | None = None, difference: pd.DataFrame | None = None, *,
                  ci: str = "ci95", pairs: Sequence[str] = ("RE-AN", "RE-AI"), network: str = "",
                  columns: str | float = "single"):
    """Fig. 5: RE-AN and RE-AI similarity across layers with CIs and the Mann-Kendall trend.

    ``difference`` (`brainprobe.rsa.kind_difference` rows with a ``layer`` column) adds, above
    each layer, the direction and stars of a significant AI-vs-AN bootstrap test.
    """
    _one_network(table, "layer_profile")
    _one_network(trend, "layer_profile (trend)")
    layers = list(dict.fromkeys(table["layer"]))
    figure, ax = plt.subplots(figsize=(_width(columns), 2.6))
    ci_columns = _ci_columns(table, ci)
    x = np.arange(len(layers))
    for pair in pairs:
        rows = table[table["pair"] == pair].set_index("layer").reindex(layers)
        y = rows["similarity"].to_numpy(float)
        label = pair
        if trend is not None and (trend["pair"] == pair).any():
            t = trend[trend["pair"] == pair].iloc[0]
            which = f", {t['p_method']}" if "p_method" in t else ""
            label = f"{pair} (Mann-Kendall tau = {t['tau']:.2f}, {_p_text(t['p'])}{which})"
        error = None
        if ci_columns:
            error = np.abs(np.vstack([y - rows[ci_columns[0]].to_numpy(float), rows[ci_columns[1]].to_numpy(float) - y]))
        ax.errorbar(x, y, yerr=error, marker="o", color=PAIR_COLORS.get(pair), label=label)
        if "p_perm" in rows:
            for xi, yi, p in zip(x, y, rows["p_perm"].to_numpy(float), strict=True):
                if _stars(p):
                    ax.text(xi, yi, "  " + _stars(p), color=PAIR_COLORS.get(pair), fontsize=6, va="bottom")
    if difference is not None:
        _one_network(difference, "layer_profile (difference)")
        tests = difference.set_index("layer").reindex(layers)
        for xi, p, direction in zip(x, tests["p_relabel" if "p_relabel" in tests else "p_boot"].to_numpy(float), tests["direction"].astype(str), strict=True):
            mark = _difference_mark(p, direction)
            if mark:
                _direction_label(ax, xi, mark, len(layers))
    ax.axhline(0, color="0.3", linewidth=0.6)
    ax.set_xticks(x, layers, rotation=45 if len(layers) > 6 else 0, ha="right" if len(layers) > 6 else "center")
    ax.set_ylabel(_similarity_label(table))  # no x label: the layer names say it, and the legend sits there
    marks = f"; top: AI vs AN {_difference_test_name(difference)} test" if difference is not None else ""
    pad = (26 if _crowded(len(layers)) else 16) if difference is not None else 4
    ax.set_title(f"{network} layers: RE-AN and RE-AI similarity\n({ci[2:]}% CI; stars: permutation test vs 0{marks})"
                 .strip(), fontsize=6, pad=pad)
    # under the axes: the trend labels are long and must not hide points
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22 if len(layers) <= 6 else -0.3), ncol=1)
    ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout(pad=0.3)
    return figure


@_journal
def _difference_test_name(difference) -> str:
    """The AI-vs-AN test a difference table's marks come from: image relabeling when present."""
    return "image-relabeling" if "p_relabel" in difference else "bootstrap"


def encoding_figure(table: pd.DataFrame, *, kinds: Sequence[str] = ("AN", "AI"), ci: str = "ci95",
                    columns: str | float = "double"):
    """Fig. 6: accuracy of RE-trained encoding models on AN and AI images, per ROI x layer.

    One panel per ROI (rows: subjects), lines over layers, 95% CIs (as the table's); with a
    ``p_compare`` column (`brainprobe.encoding.generalization`), the direction and stars of a
    significant AI-vs-AN comparison above each layer.
    """
    _one_network(table, "encoding_figure")
    subjects = list(dict.fromkeys(table["subject"]))
    rois = list(dict.fromkeys(table["roi"]))
    layers = list(dict.fromkeys(table["layer"]))
    width = _width(columns if len(rois) > 2 or columns != "double" else "single")
    figure, axes = plt.subplots(len(subjects), len(rois), figsize=(width, 1.45 * len(subjects) + 0.6),
                                sharex=True, sharey=True, squeeze=False)
    ci_columns = _ci_columns(table, ci)
    x = np.arange(len(layers))
    ax_width = width / len(rois)  # inches per panel, for the direction labels above its layers
    for i, subject in enumerate(subjects):
        for j, roi in enumerate(rois):
            ax = axes[i, j]
            part = table[(table["subject"] == subject) & (table["roi"] == roi)]
            for kind in kinds:
                rows = part[part["test_kind"] == kind].set_index("layer").reindex(layers)
                y = rows["accuracy"].to_numpy(float)
                error = None
                if ci_columns:
                    error = np.abs(np.vstack([y - rows[ci_columns[0]].to_numpy(float),
                                              rows[ci_columns[1]].to_numpy(float) - y]))
                ax.errorbar(x, y, yerr=error, marker="o", markersize=2.5, color=PAIR_COLORS.get(kind), label=kind)
            if "p_compare" in part:
                compared = part.dropna(subset=["p_compare"]).set_index("layer").reindex(layers)
                for xi, p, direction in zip(x, compared["p_compare"].to_numpy(float),
                                            compared["direction"].astype(str), strict=True):
                    mark = _difference_mark(p, direction)
                    if mark:
                        _direction_label(ax, xi, mark, len(layers), per_inch=len(layers) / ax_width)
            ax.axhline(0, color="0.3", linewidth=0.6)
            if i == 0:
                ax.set_title(roi, pad=(26 if _crowded(len(layers), len(layers) / ax_width) else 14)
                             if "p_compare" in table else 4)
            if j == 0:
                ax.set_ylabel(f"{subject}\naccuracy (r)")
            ax.set_xticks(x, layers, rotation=90)
            ax.spines[["top", "right"]].set_visible(False)
    axes[0, -1].legend(frameon=False)
    over = ("image-relabeling" if "compare_resampled" in table and
            table["compare_resampled"].dropna().astype(str).str.startswith("images").any() else "vertex-subsample")
    figure.suptitle(f"Encoding models trained on RE images, tested on AN and AI images\n({ci[2:]}% CI; marks: AI vs AN "
                    f"{over} test, {STARS})", fontsize=6)
    figure.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / figure.get_figheight()))  # ROI titles clear of the suptitle
    return figure


# 8 ordered, well separated colours (a layer's depth reads as the hue: blue early, red late)
LAYER_COLORS = ("#3b4cc0", "#4f8fe6", "#2bb3c0", "#5cb85c", "#c7c22d", "#f2a03d", "#e0603a", "#a3193b")


def layer_colors(n: int) -> list:
    """Colours for ``n`` ordered layers: `LAYER_COLORS` for up to 8, turbo beyond."""
    if n <= len(LAYER_COLORS):
        chosen = np.round(np.linspace(0, len(LAYER_COLORS) - 1, n)).astype(int) if n > 1 else [0]
        return [LAYER_COLORS[i] for i in chosen]
    return list(plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n)))


@_journal
def best_layer_figure(proportions: pd.DataFrame, *, columns: str | float = "double"):
    """Fig. S1: proportion of each ROI's vertices best predicted by each layer.

    One panel per test kind (``test_kind``: AN, AI, as in the supplement; one panel without that
    column); per ROI one bar per layer: the mean over measurements (subject x repeat) with the
    standard error across them, and one dot per subject (its mean over repeats) for the spread
    across subjects; the number of measurements is in the title.
    """
    _one_network(proportions, "best_layer_figure")
    layers = list(dict.fromkeys(proportions["layer"]))
    rois = list(dict.fromkeys(proportions["roi"]))
    kinds = list(dict.fromkeys(proportions["test_kind"])) if "test_kind" in proportions else [None]
    width = _width(columns if len(kinds) > 1 or len(rois) * len(layers) > 12 else "single")
    figure, axes = plt.subplots(1, len(kinds), figsize=(width, 2.3), sharey=True, squeeze=False)
    colors = layer_colors(len(layers))
    bar_width = 0.85 / len(layers)
    n = 0
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = proportions if kind is None else proportions[proportions["test_kind"] == kind]
        grouped = part.groupby(["roi", "layer"], sort=False)["proportion"]
        mean = grouped.mean().unstack("layer").reindex(index=rois, columns=layers)
        sem = grouped.sem().unstack("layer").reindex(index=rois, columns=layers)
        per_subject = part.groupby(["subject", "roi", "layer"], sort=False)["proportion"].mean()
        n = part.groupby(["subject", "measurement"]).ngroups
        for k, (layer, color) in enumerate(zip(layers, colors, strict=True)):
            x = np.arange(len(rois)) + (k - (len(layers) - 1) / 2) * bar_width
            ax.bar(x, mean[layer].to_numpy(float), bar_width, yerr=np.nan_to_num(sem[layer].to_numpy(float)),
                   color=color, label=layer, error_kw={"elinewidth": 0.5, "capsize": 1})
            dots = per_subject.xs(layer, level="layer").reset_index()
            ax.scatter(x[dots["roi"].map({roi: i for i, roi in enumerate(rois)}).to_numpy(int)], dots["proportion"],
                       s=3, color="black", linewidths=0, zorder=3)
        ax.set_xticks(np.arange(len(rois)), rois)
        ax.set_title(f"{kind} images" if kind else "")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("proportion of vertices")
    axes[0, -1].legend(frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left", title="best layer")
    figure.suptitle(f"Best-predicting layer per vertex (models trained on RE images)\nbars: mean ± s.e.m. over n = {n} "
                    "measurements (subject x repeat); dots: subjects", fontsize=6)
    figure.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.1 / figure.get_figheight()))  # titles clear of the suptitle
    return figure


def _ranked(square: np.ndarray) -> np.ndarray:
    """An RDM's off-diagonal entries as percentiles (for display: one colour scale per panel)."""
    from scipy.stats import rankdata

    square = np.asarray(square, dtype=float)
    upper = np.triu_indices(len(square), 1)
    ranked = np.zeros_like(square)
    ranked[upper] = rankdata(square[upper]) / max(len(upper[0]), 1)
    return ranked + ranked.T


@_journal
def rdm_panels(rdms: Mapping[str, np.ndarray], *, labels: Sequence[str] | None = None, columns: int = 3):
    """Square RDMs side by side, one colour scale per panel (rank-transformed for display)."""
    names = list(rdms)
    rows = int(np.ceil(len(names) / columns))
    n_columns = min(columns, len(names))
    panel = _width("double") / max(n_columns, 3)
    figure, axes = plt.subplots(rows, n_columns, figsize=(panel * n_columns + 0.6, panel * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        square = np.asarray(rdms[name], dtype=float)
        image = ax.imshow(_ranked(square), cmap="viridis", vmin=0, vmax=1, interpolation="none")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None and len(labels) == len(square) and len(square) <= 20:
            ax.set_yticks(np.arange(len(square)), labels, fontsize=5)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.colorbar(image, ax=axes, shrink=0.7, label="dissimilarity (percentile)")
    return figure


@_journal
def rdm_figure(rdms: Mapping[str, Mapping[str, np.ndarray]], *, labels: Sequence[str] | None = None,
               embeddings: Mapping[str, pd.DataFrame] | None = None, metric: str = "",
               columns: str | float = "double"):
    """The network's RDMs: one row per layer, one column per image kind, plus an MDS panel.

    Parameters
    ----------
    rdms : mapping of layer to mapping of kind (``RE``, ``AN``, ``AI``) to array (n_sources, n_sources)
        Rows in the same source order for every kind.
    labels : sequence of str, optional
        The sources' names, written along the rows and columns (up to 20 images).
    embeddings : mapping of layer to DataFrame, optional
        2-D MDS of all images of a layer: ``x``, ``y``, ``kind``, ``source_id``; drawn in the
        last column with a line from each RE image to its AN and AI images.
    metric : str
        The dissimilarity, for the colour bar's label.
    """
    layers = list(rdms)
    kinds = list(dict.fromkeys(kind for layer in layers for kind in rdms[layer]))
    n_columns = len(kinds) + (embeddings is not None)
    panel = _width(columns) / (n_columns + 0.25)
    figure, axes = plt.subplots(len(layers), n_columns, figsize=(_width(columns), panel * len(layers) + 0.45),
                                squeeze=False)
    image = None
    for i, layer in enumerate(layers):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            square = rdms[layer].get(kind)
            if square is None:
                ax.set_visible(False)
                continue
            image = ax.imshow(_ranked(square), cmap="viridis", vmin=0, vmax=1, interpolation="none")
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is not None and len(labels) == len(square) and len(square) <= 20:
                if j == 0:
                    ax.set_yticks(np.arange(len(square)), labels, fontsize=4)
                if i == len(layers) - 1:
                    ax.set_xticks(np.arange(len(square)), labels, fontsize=4, rotation=90)
            if i == 0:
                ax.set_title(f"{kind} images")
            if j == 0:
                ax.set_ylabel(layer, fontsize=7, fontweight="bold")
        if embeddings is not None:
            _mds_panel(axes[i, -1], embeddings.get(layer), first=i == 0)
    height = figure.get_figheight()
    # pinned 0.04 in below the top edge: the default y (a fraction of the height) drops it onto
    # the column titles of a tall figure
    figure.suptitle("Network RDMs per layer and image kind (rows and columns: source images in one order)"
                    + ("; right: MDS of all images" if embeddings is not None else ""), fontsize=6,
                    y=1 - 0.04 / height, va="top")
    figure.tight_layout(pad=0.3, rect=(0, 0.45 / height, 1, 1 - 0.2 / height))  # room for the suptitle and colour bar
    if image is not None:  # under the RDM columns, so that it takes no room from the MDS panels
        left, right = axes[-1, 0].get_position(), axes[-1, len(kinds) - 1].get_position()
        bar = figure.add_axes((left.x0, 0.12 / height, right.x1 - left.x0, 0.06 / height))
        figure.colorbar(image, cax=bar, orientation="horizontal",
                        label=f"dissimilarity{f' ({metric})' if metric else ''}, percentile within each RDM")
    return figure


def _mds_panel(ax, embedding: pd.DataFrame | None, *, first: bool) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if embedding is None:
        ax.set_visible(False)
        return
    regular = embedding[embedding["kind"] == "RE"].set_index("source_id")
    for kind in ("AN", "AI"):
        derived = embedding[embedding["kind"] == kind].set_index("source_id")
        common = regular.index.intersection(derived.index)
        for source in common:
            ax.plot([regular.at[source, "x"], derived.at[source, "x"]], [regular.at[source, "y"], derived.at[source, "y"]],
                    color=KIND_COLORS[kind], linewidth=0.4, alpha=0.6)
    for kind, part in embedding.groupby("kind", sort=False):
        ax.scatter(part["x"], part["y"], s=6, color=KIND_COLORS.get(kind, "0.5"), label=kind, linewidths=0, zorder=3)
    if len(regular) <= 12:
        for source, row in regular.iterrows():
            ax.annotate(str(source), (row["x"], row["y"]), fontsize=4, xytext=(1.5, 1.5), textcoords="offset points")
    ax.set_aspect("equal", adjustable="datalim")
    if first:
        ax.set_title("MDS (all images)")
        ax.legend(frameon=False, fontsize=5, handletextpad=0.1, borderaxespad=0.1, loc="best")


@_journal
def cortical_map(maps: Mapping[str, Mapping[str, np.ndarray]], meshes: Mapping[str, object], *,
                 views: Sequence[str] = ("lateral", "medial"), vmax: float | None = None,
                 cmap: str = "RdBu_r", title: str = "", background: Mapping[str, np.ndarray] | None = None,
                 outlines: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                 shown: Mapping[str, Mapping[str, np.ndarray]] | None = None, label: str = "RDM similarity",
                 columns: str | float = "double"):
    """Fig. 4: values per vertex drawn on a surface, one row per map.

    Each panel is an orthographic view of the mesh drawn as flat 2-D triangles (faces turned away
    culled, the rest painted far to near, shaded by their angle to the viewer): the picture a 3-D
    axis gives, several times faster (matplotlib's 3-D projection of 60k triangles per panel was
    most of a study's drawing time).

    Parameters
    ----------
    maps : mapping of row title to mapping of hemi (``"L"``/``"R"``) to array (n_mesh_vertices,)
        NaN where there is no value.
    meshes : mapping of hemi to a mesh with ``coordinates`` (n_vertices, 3) and ``faces``
        (n_faces, 3) (inflated, midthickness or flat)
    views : sequence of {"lateral", "medial", "dorsal", "ventral", "anterior", "posterior"}
        Views per hemisphere (draw a flat mesh from ``"dorsal"``).
    vmax : float, optional
        Colour limit (symmetric); default the largest absolute value.
    background : mapping of hemi to array (n_mesh_vertices,), optional
        Sulcal depth (positive in sulci, drawn dark) under the values, e.g.
        `brainprobe.roi.template_sulcal_depth` or `brainprobe.roi.mesh_sulcal_depth`.
    outlines : mapping of hemi to mapping of ROI name to bool array (n_mesh_vertices,), optional
        Drawn as black borders (the faces where the ROI label changes).
    shown : same structure as ``maps`` with bool arrays, optional
        Where to colour the values (e.g. family-wise p < .05); elsewhere the background shows.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel's triangles are one ``PolyCollection``; its ``faces_drawn`` attribute gives
        the mesh face of each drawn triangle, in drawing order.

    Examples
    --------
    >>> from brainprobe.roi import standard_meshes                          # doctest: +SKIP
    >>> meshes = standard_meshes("fs_LR_32k", "inflated")                    # doctest: +SKIP
    >>> values = {h: m.coordinates[:, 1] / 100 for h, m in meshes.items()}   # doctest: +SKIP
    >>> figure = cortical_map({"anterior-posterior": values}, meshes)         # doctest: +SKIP
    """
    hemis = [h for h in ("L", "R") if h in meshes]
    names = list(maps)
    values = np.concatenate([np.asarray(maps[n][h], float) for n in names for h in hemis if h in maps[n]])
    vmax = float(np.nanmax(np.abs(values))) if vmax is None and np.isfinite(values).any() else vmax
    vmax = vmax if vmax is not None and np.isfinite(vmax) and vmax > 0 else 1.0
    norm, colormap = plt.Normalize(-vmax, vmax), plt.get_cmap(cmap)
    panels = [(h, v) for h in hemis for v in views]
    width = _width(columns)
    panel = (width - 0.5) / len(panels)
    figure = plt.figure(figsize=(width, panel * 0.75 * len(names) + 0.25))
    for i, name in enumerate(names):
        for j, (hemi, view) in enumerate(panels):
            ax = figure.add_subplot(len(names), len(panels), i * len(panels) + j + 1)
            mesh = meshes[hemi]
            data = np.asarray(maps[name].get(hemi, np.full(mesh.n_vertices, np.nan)), float).copy()
            if shown is not None and hemi in shown.get(name, {}):
                data[~np.asarray(shown[name][hemi], bool)] = np.nan
            bg = None if background is None or hemi not in background else np.asarray(background[hemi], float)
            colours = _face_colours(np.asarray(mesh.faces), data, colormap, norm, bg,
                                    None if outlines is None else outlines.get(hemi))
            _surface_panel(ax, np.asarray(mesh.coordinates, float), np.asarray(mesh.faces), colours, hemi, view)
            ax.set_title(f"{name} · {hemi} {view}", fontsize=6, pad=1)
    figure.subplots_adjust(left=0.005, right=0.92, bottom=0.01, top=0.86 if title else 0.93, wspace=0.03,
                           hspace=0.15)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=colormap)
    figure.colorbar(mappable, cax=figure.add_axes((0.935, 0.2, 0.012, 0.6)), label=label)
    if title:
        figure.suptitle(title, fontsize=6)
    return figure


# per view of each hemisphere: the direction towards the viewer, the screen's right and its up
_VIEWS = {
    ("L", "lateral"): ((-1, 0, 0), (0, -1, 0), (0, 0, 1)), ("L", "medial"): ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ("R", "lateral"): ((1, 0, 0), (0, 1, 0), (0, 0, 1)), ("R", "medial"): ((-1, 0, 0), (0, -1, 0), (0, 0, 1)),
    **{(h, "dorsal"): ((0, 0, 1), (1, 0, 0), (0, 1, 0)) for h in "LR"},
    **{(h, "ventral"): ((0, 0, -1), (-1, 0, 0), (0, 1, 0)) for h in "LR"},
    **{(h, "anterior"): ((0, 1, 0), (1, 0, 0), (0, 0, 1)) for h in "LR"},
    **{(h, "posterior"): ((0, -1, 0), (-1, 0, 0), (0, 0, 1)) for h in "LR"},
}


def _face_colours(faces: np.ndarray, data: np.ndarray, colormap, norm, background: np.ndarray | None,
                  rois: Mapping[str, np.ndarray] | None) -> np.ndarray:
    """RGBA per face (n_faces, 4): the mean of its vertices' values where any vertex has one (finite,
    non-zero), else grey from sulcal depth (dark in sulci); black where the ROI label changes."""
    colours = np.tile([0.75, 0.75, 0.75, 1.0], (len(faces), 1))
    if background is not None:
        depth = np.nan_to_num(background[faces].mean(axis=1))
        spread = float(np.percentile(np.abs(depth), 95)) or 1.0
        colours[:, :3] = (0.72 - 0.22 * np.clip(depth / spread, -1, 1))[:, None]
    value = data[faces]
    valued = np.isfinite(value) & (value != 0)
    has_value = valued.any(axis=1)  # a face touching a shown vertex is coloured (as nilearn does)
    mean = np.where(valued, value, 0.0).sum(axis=1)[has_value] / valued.sum(axis=1)[has_value]
    colours[has_value] = colormap(norm(mean))
    if rois:
        labels = np.zeros(len(data), int)
        for k, mask in enumerate(rois.values(), start=1):
            labels[np.asarray(mask, bool)] = k
        corner = labels[faces]
        colours[(corner != corner[:, :1]).any(axis=1)] = (0.0, 0.0, 0.0, 1.0)
    return colours


def _surface_panel(ax, coordinates: np.ndarray, faces: np.ndarray, colours: np.ndarray, hemi: str,
                   view: str) -> None:
    """One orthographic view: cull the faces turned away, paint the rest far to near, shade each
    by its angle to the viewer (so folds read as 3-D)."""
    from matplotlib.collections import PolyCollection

    if (hemi, view) not in _VIEWS:
        raise ValueError(f"view: expected one of {sorted({v for _, v in _VIEWS})}, found {view!r}")
    towards, right, up = (np.asarray(v, float) for v in _VIEWS[(hemi, view)])
    corners = coordinates[faces]  # (n_faces, 3 corners, xyz)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    facing = normals @ towards
    outward = np.sign(np.sum((corners.mean(axis=1) - coordinates.mean(axis=0)) * normals)) or 1.0
    facing *= outward  # meshes wound the other way round have inward normals
    visible = np.flatnonzero(facing > 0)
    order = visible[np.argsort(corners[visible].mean(axis=1) @ towards, kind="stable")]  # far first
    screen = np.stack([corners[order] @ right, corners[order] @ up], axis=-1)
    rgba = colours[order].copy()
    rgba[:, :3] *= (0.55 + 0.45 * facing[order])[:, None]
    # edges in the face colour close the hairline gaps between unantialiased triangles
    collection = PolyCollection(screen, facecolors=rgba, edgecolors=rgba, linewidths=0.15, antialiased=False,
                                rasterized=True)  # 60k triangles as vectors would make a 10 MB PDF
    collection.faces_drawn = order
    ax.add_collection(collection)
    flat = coordinates @ np.stack([right, up], axis=1)
    pad = 0.02 * np.ptp(flat, axis=0)
    ax.set_xlim(flat[:, 0].min() - pad[0], flat[:, 0].max() + pad[0])
    ax.set_ylim(flat[:, 1].min() - pad[1], flat[:, 1].max() + pad[1])
    ax.set_aspect("equal")
    ax.set_axis_off()
