"""Figures of a finished study and its self-contained ``report.html``.

The report is a list of sections, each made by one function from the result tables
(``*_section(context) -> str``); `REPORT_SECTIONS` gives their order, so a new section is one
function and one entry there. Every number of the summary is a ``<span class="n">`` that names
the table, row and column it comes from (``data-table``, ``data-row``, ``data-column``) and
holds the exact value (``data-value``), so a test (or a reader) can check it against the CSV.
"""

from __future__ import annotations

import base64
import copy
import functools
import html
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plotting
from ..roi import mesh_sulcal_depth, template_sulcal_depth
from ..rsa import square_rdm
from ._cache import atomic_write, read_arrays, write_arrays
from ._steps import study_meshes
from ._tables import environment, read_table

__all__ = ["REPORT_SECTIONS", "ReportContext", "figure_caption", "make_figures", "read_results", "redraw_figures",
           "write_report"]

# tables with one row per vertex: the report shows their size and a link, not their rows
LARGE_TABLES = ("searchlight", "selection", "best_layer", "network_rdms", "network_mds")
TABLE_ROWS_SHOWN = 60
REPORT_IMAGE_WIDTH = 1400  # px: figures are embedded at most this wide (the files keep their dpi)
CSS_PX_PER_INCH = 130  # a figure is shown at 1.35 x its printed size (7 pt text reads as ~9.5 pt)
ALPHA = 0.05


# -- figures -----------------------------------------------------------------------------------------
FIG1_SOURCES = 5  # Fig. 1's columns: the first source images
FIG1_IMAGES = "fig1_images.npz"  # beside the tables in results/: the 8-bit pixels Fig. 1 shows
# results/brain_rdms/<subject>.npz: ROI RDMs of image sets too large for brain_rdms.csv (`BrainRdms`)
RDM_FOLDER = "brain_rdms"
RDM_FILES = "brain_rdm_files"  # its key in `read_results`'s tables: subject -> path


def fig1_images(stimuli, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The images Fig. 1 shows (every kind of its first `FIG1_SOURCES` RE sources), as 8-bit
    (H, W, 3) arrays by image id: what the study keeps in ``results/`` to draw Fig. 1 again."""
    sources = list(dict.fromkeys(table.loc[table["kind"] == "RE", "source_id"]))[:FIG1_SOURCES]
    wanted = set(table.loc[table["source_id"].isin(sources), "image_id"].astype(str))
    # only the images shown are converted: the whole set's float copies were 18 GB at 10,000 images
    positions = [i for i, image_id in enumerate(stimuli.image_ids) if image_id in wanted]
    shown = stimuli.images[positions].numpy().transpose(0, 2, 3, 1)
    pixels = np.round(shown * 255.0).clip(0, 255).astype(np.uint8)
    return {stimuli.image_ids[i]: pixels[k] for k, i in enumerate(positions)}


def write_fig1_images(path: Path, images: dict[str, np.ndarray]) -> None:
    """`fig1_images` as one ``.npz`` (``image_ids`` and ``pixels`` (n, H, W, 3) uint8), no pickle."""
    ids = list(images)
    write_arrays(path, {"image_ids": np.asarray(ids, dtype=str),
                        "pixels": np.stack([images[i] for i in ids]) if ids else np.zeros((0, 1, 1, 3), np.uint8)})


def read_results(folder) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    """A study's ``results/`` folder: every table (name -> DataFrame) and Fig. 1's images by id."""
    folder = Path(folder)
    tables = {path.stem: read_table(path) for path in sorted(folder.glob("*.csv"))}
    if (folder / RDM_FOLDER).is_dir():  # a large image set's ROI RDMs, one .npz per subject (read when drawn)
        tables[RDM_FILES] = {path.stem: path for path in sorted((folder / RDM_FOLDER).glob("*.npz"))}
    images = {}
    if (folder / FIG1_IMAGES).is_file():
        arrays = read_arrays(folder / FIG1_IMAGES)
        images = dict(zip(arrays["image_ids"].tolist(), arrays["pixels"], strict=True))
    return tables, images


def redraw_figures(results, config, folder) -> list[Path]:
    """Draw every report figure again from a study's ``results/`` folder alone (and its config).

    Parameters
    ----------
    results : path
        ``<output>/results`` of a finished study: its tables and Fig. 1's images.
    config : StudyConfig
        The study's configuration (the figures' formats, dpi, surfaces and labels).
    folder : path
        Where the figures are written.

    Returns
    -------
    list of Path
        The files written (all formats).
    """
    tables, images = read_results(results)
    return make_figures(tables, images, config, Path(folder))


def make_figures(tables: dict, images: dict, config, folder: Path) -> list[Path]:
    """Draw every figure the tables allow; return the paths written (all formats).

    Everything drawn comes from ``tables`` (those of ``results/``) and ``images`` (Fig. 1's
    pixels by image id), apart from the meshes the maps are drawn on. With more than one network,
    the per-network figures (5, 6, S1, RDMs) get the label in their file names.
    """
    formats, dpi = config["figures"]["formats"], config["figures"]["dpi"]
    written: list[Path] = []

    def save(figure, name):
        written.extend(plotting.save_figure(figure, folder / name, formats, dpi=dpi))

    if images:
        save(plotting.stimulus_grid(images, tables["stimuli"], n_sources=FIG1_SOURCES), "fig1_stimuli")
    if "brain_rsa" in tables:
        save(plotting.kind_bars(tables["brain_rsa"], tables.get("brain_difference"), ci="ci68"), "fig3_brain_rsa")
    if "brain_rsa_s2" in tables:
        n = config["selection"]["n_per_hemi_s2"]
        up_to = "up to " if _smaller_rois(tables["brain_rsa_s2"]) else ""
        save(plotting.kind_bars(tables["brain_rsa_s2"], tables.get("brain_difference_s2"), ci="ci68",
                                title=f"RE-AN and RE-AI similarity, {up_to}{2 * n} vertices per ROI"), "figS2_brain_rsa")
    if "searchlight" in tables:
        surface = config["searchlight"]["surface"]
        for subject, part in tables["searchlight"].groupby("subject", sort=False):
            drawn = searchlight_layers(part, config, tables.get("selection"))
            threshold = "no threshold (n_perm = 0)"
            if drawn["shown"] is not None:
                counts = ", ".join(f"{pair} {sum(int(m.sum()) for m in by_hemi.values())}"
                                   for pair, by_hemi in drawn["shown"].items())
                threshold = f"coloured: family-wise p < .05, centres: {counts} of {len(part) // part['pair'].nunique()}"
            save(plotting.cortical_map(drawn["maps"], drawn["meshes"],
                                       views=("dorsal",) if surface == "flat" else ("lateral", "medial"),
                                       background=drawn["background"], outlines=drawn["outlines"], shown=drawn["shown"],
                                       title=f"{subject}: searchlight RDM similarity ({surface} surface; {threshold}; "
                                             f"grey: sulcal depth; outlines: ROIs)"),
                 f"fig4_searchlight_{subject}")
    written += _general_figures(tables, config, folder)
    names = {network["label"]: network["name"] for network in config.networks}
    for label in names:
        suffix = f"_{label}" if len(names) > 1 else ""
        mine = {name: frame[frame["network"] == label] for name, frame in tables.items() if "network" in frame}
        if "network_rsa" in mine:
            title = names[label] if label == names[label] else f"{label} ({names[label]})"
            save(plotting.layer_profile(mine["network_rsa"], mine.get("network_trend"), mine.get("network_difference"),
                                        network=title),
                 f"fig5_network_layers{suffix}")
        if "encoding" in mine:
            save(plotting.encoding_figure(mine["encoding"]), f"fig6_encoding{suffix}")
        if "best_layer_proportions" in mine:
            save(plotting.best_layer_figure(mine["best_layer_proportions"]), f"figS1_best_layer{suffix}")
        if "network_rdms" in mine and len(mine["network_rdms"]):
            save(plotting.network_rdm_figure(mine["network_rdms"], mine.get("network_mds"),
                                             metric=config["rsa"]["metric"]),
                 f"rdms_network{suffix}")
    return written


def _general_figures(tables: dict, config, folder: Path) -> list[Path]:
    """The general design's figures: layer profile with the ceiling, best-layer map, ROI RDMs."""
    if "general_rsa" not in tables:
        return []
    formats, dpi = config["figures"]["formats"], config["figures"]["dpi"]
    written: list[Path] = []
    group = tables.get("general_group")
    if group is not None and len(group):
        written += plotting.save_figure(plotting.ceiling_profile(group, title="Group: RDM correlation per layer"),
                                        folder / "fig_general_layers_group", formats, dpi=dpi)
        written += plotting.save_figure(plotting.best_layer_map(group), folder / "fig_general_best_layer_map",
                                        formats, dpi=dpi)
    for subject, part in tables["general_rsa"].groupby("subject", sort=False):
        written += plotting.save_figure(plotting.ceiling_profile(part, title=f"{subject}: RDM correlation per layer"),
                                        folder / f"fig_general_layers_{subject}", formats, dpi=dpi)
    rdms = tables.get("brain_rdms")
    subject = tables["general_rsa"]["subject"].iloc[0]
    files = tables.get(RDM_FILES, {})
    if subject not in files:
        first = rdms[rdms["subject"] == rdms["subject"].iloc[0]]
        square = {roi: square_rdm(part["dissimilarity"].to_numpy(float)) for roi, part in first.groupby("roi", sort=False)}
    else:
        with np.load(files[subject], allow_pickle=False) as found:
            square = {roi: square_rdm(found[roi]) for roi in found.files if roi not in ("image_ids", "metric")}
    written += plotting.save_figure(plotting.rdm_panels(square), folder / "rdms_brain", formats, dpi=dpi)
    return written


def searchlight_layers(part: pd.DataFrame, config, selection: pd.DataFrame | None = None) -> dict:
    """What Fig. 4 and the viewer draw for one subject's searchlight rows.

    The meshes (``[searchlight] surface`` of the subject's ``meshes``) and sulcal depth behind
    them come from the configuration; the maps from the table (`brainprobe.plotting.searchlight_maps`).
    Returns a dict with ``meshes`` (hemi -> Mesh), ``background`` (hemi -> sulcal depth) and the
    ``maps``, ``shown`` and ``outlines`` of `searchlight_maps`.
    """
    subject = part["subject"].iloc[0]
    spec = _subject_meshes(subject, config)
    surface = config["searchlight"]["surface"]
    meshes = study_meshes(spec, surface) if isinstance(spec, str) else study_meshes(spec)
    mine = selection[selection["subject"] == subject] if selection is not None and "subject" in selection else None
    return {"meshes": meshes, "background": sulcal_background(spec, meshes),
            **plotting.searchlight_maps(part, meshes, mine)}


def sulcal_background(spec, meshes: dict) -> dict | None:
    """Sulcal depth per hemisphere: the template's map, or one computed from the subject's mesh."""
    if isinstance(spec, str):
        found = _template_sulc(spec)
        if found is not None and all(len(found[h]) == m.n_vertices for h, m in meshes.items() if h in found):
            return found
    try:
        folded = study_meshes(spec) if not isinstance(spec, str) else study_meshes(spec, "midthickness")
        return {hemi: mesh_sulcal_depth(mesh) for hemi, mesh in folded.items()}
    except (ValueError, FileNotFoundError):
        return None


@functools.lru_cache(maxsize=4)
def _template_sulc(name: str):
    try:
        return template_sulcal_depth(name)
    except (ValueError, ImportError, OSError):
        return None


def _subject_meshes(subject: str, config):
    for entry in config["subject"]:
        if entry["id"] == subject:
            return entry["meshes"]
    return config["subjects"]["mesh"]


# -- captions ------------------------------------------------------------------------------------------

def _smaller_rois(table: pd.DataFrame | None) -> str:
    """The ROIs (and subjects) too small for ``n_per_hemi`` (all their vertices kept), in words ('' if none)."""
    if table is None or "whole_roi" not in table:
        return ""
    small = table[table["whole_roi"].astype(bool)].drop_duplicates(["subject", "roi"])
    return ", ".join(f"{row.roi} in {row.subject} ({row.n_units})" for row in small.itertuples())

def figure_caption(stem: str, config, tables: dict) -> str:
    """What a figure plots, its CI level and the test behind each mark (from its file name)."""
    rsa, encoding = config["rsa"], config["encoding"]
    stars = "* p < .05, ** p < .01, *** p < .001, uncorrected (FDR q-values per family: the tables' q_ columns)"
    difference = ("AI-vs-AN test of the difference of the two similarities (resampled: images; "
                  + (f"{rsa.get('n_perm', 0)} relabelings of each source's AI and AN images, p_relabel"
                     if rsa.get("n_perm", 0) else f"{rsa['n_boot']} bootstrap resamples of images, p_boot")
                  + f", {rsa['alternative']}), marked with its direction (e.g. AI>AN) and stars")
    rdm_words = f"RDM similarity: {rsa['method'].capitalize()} correlation of RDMs ({rsa['metric']} distance)"
    if stem.startswith("fig1") and "general_rsa" in tables:
        network = config.networks[0]["name"]
        return (f"Fig. 1. Stimuli: the first images of the study (named on top; {len(tables['stimuli'])} in all). "
                f"Under each image: {network}'s top-1 class and its softmax probability P(class).")
    if stem.startswith("fig1"):
        network = config.networks[0]["name"]
        n = int((tables["stimuli"]["kind"] == "RE").sum()) if "stimuli" in tables else 0
        return (f"Fig. 1. Stimuli. Columns: the first source images (named on top; {n} RE images in the study); rows: "
                f"the RE image, its AN image (noise optimised until {network} assigns the target class) and its AI "
                f"image (the RE image itself changed by gradient steps, a penalty keeping it close, until {network} assigns "
                f"another, randomly drawn class; nothing is blended in). Under each image: {network}'s "
                "top-1 class and its softmax probability P(class).")
    if stem.startswith(("fig3", "figS2")):
        s2 = stem.startswith("figS2")
        n = config["selection"]["n_per_hemi_s2" if s2 else "n_per_hemi"]
        smaller = _smaller_rois(tables.get("brain_rsa_s2" if s2 else "brain_rsa"))
        whole = f" (all of {smaller}: fewer vertices with a defined reliability; the table's whole_roi and n_units)" if smaller else ""
        return (f"{'Fig. S2' if s2 else 'Fig. 3'}. RE-AN (blue) and RE-AI (red) similarity per "
                f"ROI, one panel per subject, {n} most reliable vertices per hemisphere{whole}; {rdm_words}. Error bars: 68% "
                f"CI, {_interval_words(rsa['ci'], 'vertices', rsa['n_boot'])}. Stars over a bar: permutation test of similarity > 0 ({rsa['n_perm']} "
                f"image relabelings). Brackets: {difference}; {stars}.")
    if stem.startswith("fig4"):
        subject = stem.removeprefix("fig4_searchlight_")
        n_perm = config["searchlight"]["n_perm"]
        threshold = (f"coloured only where the family-wise p < .05 (maximum-statistic permutation test over all "
                     f"centres, {n_perm} relabelings)" if n_perm else
                     "every centre coloured, no threshold ([searchlight] n_perm = 0: no permutation maps)")
        return (f"Fig. 4. Searchlight maps of {subject}: RE-AN (top) and RE-AI (bottom) similarity in the "
                f"{config['selection']['radius_mm']:g} mm geodesic disk around each vertex, drawn on the "
                f"{config['searchlight']['surface']} surface over sulcal depth (dark grey: sulci); {threshold}. "
                f"Black outlines: the ROIs. No CI is drawn. {rdm_words}.")
    if stem.startswith("fig5"):
        return (f"Fig. 5. RE-AN (blue) and RE-AI (red) similarity of the network's own RDMs per layer; {rdm_words}. "
                f"Error bars: 95% CI, {_interval_words(rsa['ci'], 'units', rsa['n_boot'])}. Stars next to a point: "
                f"permutation test of similarity > 0 (resampled: images, {rsa['n_perm']} relabelings). Legend: "
                f"Mann-Kendall trend test over layers (tau, p; exact or normal approximation as named; the paper's, "
                f"it treats layers as independent values); the trend test over image resamples, which keeps the "
                f"layers' correlation, is in the summary. Marks above the plot: {difference}; {stars}.")
    if stem.startswith("fig6"):
        return (f"Fig. 6. Encoding models ({encoding['estimator']}, {encoding['n_nonzero']} units per vertex) trained "
                f"on the responses to RE images, per ROI x layer, tested on AN (blue) and AI (red) images; accuracy: "
                f"correlation of predicted and measured responses ({encoding['per']}). Error bars: 95% CI, "
                f"{_interval_words(encoding['ci'], 'vertices', encoding['n_boot'])}. Marks above a layer: AI-vs-AN "
                f"comparison ({encoding['alternative']}), "
                + (f"resampled: images ({encoding['n_perm']} relabelings of each source's AI and AN images)"
                   if encoding["compare_over"] == "images" else
                   f"resampled: vertices (paper; {encoding['n_boot']} subsamples; assumes independent vertices and "
                   f"fixed images)")
                + f", with its direction; {stars}.")
    if stem.startswith("figS1"):
        return ("Fig. S1. Proportion of each ROI's vertices best predicted by each layer (models trained on RE, "
                "scored on AN and on AI images; one panel per kind). Bars: mean over measurements (subject x repeat), "
                "error bars: s.e.m. across them (descriptive); dots: each subject's mean. The paired t-tests of the "
                "supplement are in the summary (best_layer_tests), resampled: "
                + ("subjects (repeats averaged within subject, df = n_subjects - 1)."
                   if config["best_layer"]["unit"] == "subjects" else
                   "subject x repeat measurements (paper; repeats counted as independent pairs)."))
    if stem.startswith("fig_general_layers"):
        who = "mean over subjects ± s.e.m.; grey band: leave-one-subject-out noise ceiling (lower to upper bound)" \
            if stem.endswith("group") else f"one subject; shaded: 95% CI over {rsa['n_boot']} image bootstrap samples"
        return (f"RDM correlation of each ROI's RDM with each layer's RDM ({rdm_words}), {who}. Star: the best "
                "layer. Dashed lines: model RDMs (same labels = 0, different = 1). Per-layer p-values: "
                "general_rsa (image relabeling) and general_group (random effects over subjects).")
    if stem.startswith("fig_general_best_layer_map"):
        return (f"Mean RDM correlation over subjects ({rdm_words}) of every ROI (rows) and layer (columns); the "
                "outlined cell is each ROI's best layer (its bootstrap-over-subjects interval: general_group_best).")
    if stem == "rdms_brain":
        return (f"Each ROI's RDM of the first subject ({rsa['metric']} distance shown as percentiles; rows and "
                "columns: images in the stimulus order). Descriptive: no test, no CI.")
    if stem.startswith("rdms"):
        return (f"RDMs of every analysed layer (rows) for the RE, AN and AI images (columns; rows and columns of "
                f"each RDM: the source images in one order, named on the edges), {rsa['metric']} distance shown as "
                "percentiles. Right: 2-D classical MDS of the RDM of all images of the layer, a line from each RE "
                "image to its AN (blue) and AI (red) image. Descriptive: no test, no CI.")
    if stem.startswith("fig_synthesis"):
        synthesis = config["synthesis"]
        return (f"Images synthesized through the first subject's encoding models ({encoding['estimator']}, each ROI "
                f"at its best held-out layer): {synthesis['n_images']} per ROI and objective "
                f"({', '.join(synthesis['objectives'])}), at most {synthesis['max_iter']} steps. Under each image: "
                "what it was made for and every model's predicted response in z units (SDs of its responses to 256 "
                "random crops of the bundled photographs); \"(untrusted)\": the model's held-out accuracy is not above "
                "its permutation null, so its images say nothing about the brain (synthesis_validity table). "
                "Descriptive: no test, no CI.")
    raise ValueError(f"figure {stem!r} has no caption: add one to figure_caption")


def _interval_words(ci: str, units: str, n_boot: int) -> str:
    """What an interval resampled, in a caption's words."""
    if ci == "images":
        return "resampled: images (delete-one-image jackknife, t quantiles; generalizes to new images)"
    if units == "units":
        return (f"resampled: network units (paper; {n_boot} subsamples of 80% of a layer's units): descriptive, a "
                "deterministic network's units are not a sample, and the images are held fixed")
    return (f"resampled: vertices (paper; {n_boot} subsamples of 80% of the vertices): assumes independent vertices "
            "and a fixed image set, so it does not cover spatially smooth noise or new images")


# -- the report --------------------------------------------------------------------------------------------
@dataclass
class ReportContext:
    """What every report section may read."""

    output: Path
    result: object
    config: object
    seconds: float
    device: str
    versions: dict = field(default_factory=dict)

    @property
    def tables(self) -> dict:
        return self.result.tables


def _num(value, table: str, row: int, column: str, digits: int = 2, *, p: bool = False) -> str:
    """A number of the summary, tagged with the table cell it comes from."""
    value = float(value)
    text = "NaN" if not np.isfinite(value) else _p_text(value) if p else f"{value:.{digits}f}"
    return (f'<span class="n" data-table="{table}" data-row="{row}" data-column="{column}" '
            f'data-value="{value!r}">{text}</span>')


def _estimate(frame: pd.DataFrame, name: str, row: int, column: str, ci: str = "ci95") -> str:
    record = frame.loc[row]
    text = _num(record[column], name, row, column)
    if f"{ci}_low" in frame:
        text += (f" [{_num(record[f'{ci}_low'], name, row, f'{ci}_low')}, "
                 f"{_num(record[f'{ci}_high'], name, row, f'{ci}_high')}]")
    return text


def _p_text(value: float) -> str:
    """A p-value as read: ``.001`` below 0.001 (shown as ``p < .001``), else three significant digits."""
    return ".001" if value < 0.001 else f"{value:.3g}"


def _p(frame: pd.DataFrame, name: str, row: int, column: str, *, letter: str = "p", star: bool = True) -> str:
    """``p = 0.0123 *`` or ``p &lt; .001 *`` (HTML), the number tagged with its table cell."""
    value = float(frame.loc[row, column])
    mark = " <b>*</b>" if star and np.isfinite(value) and value < ALPHA else ""
    relation = "&lt;" if np.isfinite(value) and value < 0.001 else "="
    return f"{letter} {relation} {_num(value, name, row, column, p=True)}{mark}"


def _summary_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table class="summary"><tr>{head}</tr>{body}</table></div>'


def _kind_rows(similarity: pd.DataFrame, difference: pd.DataFrame | None, names: tuple[str, str],
               keys: list[str]) -> tuple[list[list[str]], int, int]:
    """Per unit (ROI x subject, or network x layer): RE-AN and RE-AI with CI and p, and the difference test."""
    rows, ai_first, an_first = [], 0, 0
    similarity = similarity.reset_index(drop=True)
    difference = None if difference is None else difference.reset_index(drop=True)
    for unit, part in similarity.groupby(keys, sort=False):
        unit = unit if isinstance(unit, tuple) else (unit,)
        cells = [html.escape(str(u)) for u in unit]
        for pair in ("RE-AN", "RE-AI"):
            found = part.index[part["pair"] == pair]
            cells.append(f"{_estimate(similarity, names[0], found[0], 'similarity')}, "
                         f"{_p(similarity, names[0], found[0], 'p_perm')}" if len(found) else "")
        if difference is not None:
            match = np.ones(len(difference), bool)
            for key, value in zip(keys, unit, strict=True):
                match &= (difference[key].astype(str) == str(value)).to_numpy()
            found = np.flatnonzero(match)
            if len(found):
                i = found[0]
                test = "p_relabel" if "p_relabel" in difference else "p_boot"
                p = float(difference.loc[i, test])
                direction = str(difference.loc[i, "direction"])
                significant = np.isfinite(p) and p < ALPHA
                ai_first += significant and direction.startswith("RE-AI >")
                an_first += significant and direction.startswith("RE-AI <")
                cells.append(f"{_estimate(difference, names[1], i, 'difference')}, "
                             f"{html.escape(direction) if significant else 'no difference'}, {_p(difference, names[1], i, test)}")
            else:
                cells.append("")
        rows.append(cells)
    return rows, ai_first, an_first


def _brain_summary(tables: dict) -> str:
    if "brain_rsa" not in tables:
        return ""
    rows, ai, an = _kind_rows(tables["brain_rsa"], tables.get("brain_difference"), ("brain_rsa", "brain_difference"),
                              ["subject", "roi"])
    n = len(rows)
    test = _difference_test_words(tables.get("brain_difference"))
    lead = (f"<p><b>Brain (ROIs), per subject.</b> RE-AI more similar than RE-AN in <b>{ai}</b> of {n} subject x ROI "
            f"tests, RE-AN more similar in <b>{an}</b> (AI-vs-AN {test} p &lt; .05, uncorrected); the rest show no "
            f"difference. {_ci_words(tables['brain_rsa'])}</p>")
    return lead + _summary_table(["subject", "ROI", "RE-AN r [95% CI], permutation p", "RE-AI r [95% CI], permutation p",
                                  f"RE-AI minus RE-AN [95% CI], direction, {test} p"], rows)


def _difference_test_words(difference) -> str:
    if difference is not None and "p_relabel" in difference:
        return "image-relabeling"
    return "image-bootstrap"


def _ci_words(similarity: pd.DataFrame) -> str:
    """Which unit the table's intervals resampled, from its ``resampled`` column."""
    if "resampled" not in similarity or similarity.empty:
        return ""
    return f"CIs resampled: {html.escape(str(similarity['resampled'].iloc[0]))}."


def _group_summary(tables: dict) -> str:
    """Group-level findings first: random effects across subjects, noise ceilings, FDR."""
    group = tables.get("group_rsa")
    encoding = tables.get("group_encoding")
    if group is None and encoding is None:
        n = tables["brain_rsa"]["subject"].nunique() if "brain_rsa" in tables else 0
        return (f"<p><b>Group level.</b> Not tested: {n} subject(s); random effects across subjects need at least 3. "
                "The per-subject results below do not generalize to other subjects.</p>") if n else ""
    text = ""
    if group is not None:
        group = group.reset_index(drop=True)
        rows = []
        for i, row in group.iterrows():
            ceiling = ""
            if "ceiling_RE_lower" in group:
                ceiling = (f"[{_num(row['ceiling_RE_lower'], 'group_rsa', i, 'ceiling_RE_lower')}, "
                           f"{_num(row['ceiling_RE_upper'], 'group_rsa', i, 'ceiling_RE_upper')}]")
            rows.append([html.escape(str(row["roi"])), html.escape(str(row["pair"])),
                         f"{_num(row['mean_similarity'], 'group_rsa', i, 'mean_similarity')} "
                         f"(s.e.m. {_num(row['sem'], 'group_rsa', i, 'sem')})",
                         f"t({_num(row['df'], 'group_rsa', i, 'df', 0)}) = {_num(row['t'], 'group_rsa', i, 't')}, "
                         f"{_p(group, 'group_rsa', i, 'p')}, {_p(group, 'group_rsa', i, 'q_fdr', letter='q', star=False)}",
                         ceiling])
        n = int(group["n_subjects"].iloc[0])
        significant = int((group["q_fdr"] < ALPHA).sum())
        text += (f"<p><b>Group level (random effects across {n} subjects).</b> Similarity &gt; 0 at the group level "
                 f"in <b>{significant}</b> of {len(group)} ROI x pair tests (one-sample t across subjects, "
                 "Benjamini-Hochberg FDR q &lt; .05 over the ROIs of each pair). Noise ceiling: leave-one-subject-out "
                 "lower and upper bound of the RE RDM's agreement across subjects (rsatoolbox's definition).</p>")
        text += _summary_table(["ROI", "pair", "mean r across subjects", "random-effects test, FDR q",
                                "RE RDM noise ceiling [lower, upper]"], rows)
    if encoding is not None:
        encoding = encoding.reset_index(drop=True)
        significant = int((encoding["q_fdr"] < ALPHA).sum())
        text += (f"<p>Encoding at the group level: mean accuracy &gt; 0 across {int(encoding['n_subjects'].iloc[0])} "
                 f"subjects in <b>{significant}</b> of {len(encoding)} network x ROI x layer x kind tests (one-sample t, "
                 "FDR q &lt; .05 within each network and test kind; table group_encoding).</p>")
    return text


def _network_summary(tables: dict) -> str:
    if "network_rsa" not in tables:
        return ""
    rows, ai, an = _kind_rows(tables["network_rsa"], tables.get("network_difference"),
                              ("network_rsa", "network_difference"), ["network", "layer"])
    test = _difference_test_words(tables.get("network_difference"))
    text = (f"<p><b>Network (layers).</b> RE-AI more similar than RE-AN in <b>{ai}</b> of {len(rows)} network x layer "
            f"tests, RE-AN more similar in <b>{an}</b> (AI-vs-AN {test} p &lt; .05, uncorrected). "
            f"{_ci_words(tables['network_rsa'])}</p>")
    text += _summary_table(["network", "layer", "RE-AN r [95% CI], permutation p", "RE-AI r [95% CI], permutation p",
                            f"RE-AI minus RE-AN [95% CI], direction, {test} p"], rows)
    trend = tables.get("network_trend")
    if trend is not None:
        trend = trend.reset_index(drop=True)
        lines = []
        for i, row in trend.iterrows():
            line = (f"<li>{html.escape(str(row.get('network', '')))} {html.escape(str(row['pair']))}: ")
            if "p_boot_trend" in trend:
                line += (f"slope {_num(row['trend_slope'], 'network_trend', i, 'trend_slope', 3)} per layer, "
                         f"image-bootstrap {_p(trend, 'network_trend', i, 'p_boot_trend')}; ")
            line += (f"Mann-Kendall (paper) tau = {_num(row['tau'], 'network_trend', i, 'tau')}, "
                     f"{_p(trend, 'network_trend', i, 'p')} ({html.escape(str(row.get('p_method', '')))}): "
                     f"{html.escape(str(row.get('trend', '')))}</li>")
            lines.append(line)
        uses = ("the image-bootstrap test (every layer recomputed on each resample of images, so the layers' "
                "correlation is kept) is the one this summary relies on; Mann-Kendall, the paper's, treats the "
                "layers as independent values and rejects too often when neighbouring layers correlate"
                if "p_boot_trend" in trend else "Mann-Kendall, the paper's test")
        text += f"<p>Trend over layers ({uses}):</p><ul>" + "".join(lines) + "</ul>"
    return text


def _encoding_summary(tables: dict) -> str:
    encoding = tables.get("encoding")
    if encoding is None:
        return ""
    encoding = encoding.reset_index(drop=True)
    keys = [k for k in ("network", "subject", "roi") if k in encoding]
    layers = list(dict.fromkeys(encoding["layer"]))
    rows, counts = [], {"AI > AN": 0, "AI < AN": 0, "n": 0}
    for unit, part in encoding.groupby(keys, sort=False):
        unit = unit if isinstance(unit, tuple) else (unit,)
        cells = [html.escape(str(u)) for u in unit]
        for layer in layers:
            here = part[part["layer"] == layer]
            texts = []
            for kind in ("AN", "AI"):
                found = here.index[here["test_kind"] == kind]
                if len(found):
                    texts.append(f"{kind} {_num(encoding.loc[found[0], 'accuracy'], 'encoding', found[0], 'accuracy')}")
            compared = here.index[here["p_compare"].notna()] if "p_compare" in here else []
            if len(compared):
                i = compared[0]
                p = float(encoding.loc[i, "p_compare"])
                counts["n"] += 1
                direction = str(encoding.loc[i, "direction"])
                if p < ALPHA:
                    counts[direction] = counts.get(direction, 0) + 1
                texts.append(f"{html.escape(direction) if p < ALPHA else 'n.s.'}, {_p(encoding, 'encoding', i, 'p_compare')}")
            cells.append(" · ".join(texts))  # one line per cell: three stacked lines made a grid taller than a screen
        rows.append(cells)
    resampled = (str(encoding["compare_resampled"].dropna().iloc[0])
                 if "compare_resampled" in encoding and encoding["compare_resampled"].notna().any() else "")
    lead = (f"<p><b>Encoding generalization, per subject.</b> Models trained on RE images predict AI images better "
            f"than AN images in <b>{counts['AI > AN']}</b> of {counts['n']} ROI x layer comparisons, worse in "
            f"<b>{counts['AI < AN']}</b> (AI-vs-AN test, p &lt; .05 uncorrected; resampled: {html.escape(resampled)}). "
            "Cells: accuracy (r) on AN and AI images, the direction and p of the AI-vs-AN test.</p>")
    return lead + _summary_table(keys + layers, rows)


def _best_layer_summary(tables: dict) -> str:
    tests = tables.get("best_layer_tests")
    if tests is None:
        return ""
    tests = tests.reset_index(drop=True)
    rows = []
    for i, row in tests.iterrows():
        rows.append([html.escape(str(row.get("network", ""))), html.escape(str(row.get("test_kind", ""))),
                     html.escape(str(row["test"])), _num(row["mean_difference"], "best_layer_tests", i, "mean_difference", 3),
                     f"t({_num(row['df'], 'best_layer_tests', i, 'df', 0)}) = {_num(row['t'], 'best_layer_tests', i, 't')}",
                     _p(tests, "best_layer_tests", i, "p")])
    unit = html.escape(str(tests["resampled"].iloc[0])) if "resampled" in tests else "subject x repeat"
    return (f"<p><b>Best layer per vertex</b> (paired t-tests, Supplementary Note 1; pairs: {unit}):</p>"
            + _summary_table(["network", "kind", "test", "mean difference", "t(df)", "p"], rows))


def _general_summary(tables: dict) -> str:
    """The general design: "ROI x: best layer y, r = ..., z% of the noise ceiling" per ROI."""
    best = tables.get("general_group_best")
    name = "general_group_best"
    if best is None or not len(best):
        best, name = tables.get("general_best"), "general_best"
    if best is None or not len(best):
        return ""
    best = best.reset_index(drop=True)
    lines = []
    for i, row in best.iterrows():
        who = f"{html.escape(str(row['subject']))}, " if "subject" in best and name == "general_best" else ""
        text = (f"{who}<b>{html.escape(str(row['roi']))}</b>: best layer {html.escape(str(row['best_layer']))} "
                f"(95% CI {html.escape(str(row['best_layer_low']))} to {html.escape(str(row['best_layer_high']))}, "
                f"over {row['resampled']}), r = {_num(row['r'], name, i, 'r')}")
        if "percent_of_ceiling" in best and np.isfinite(float(row["percent_of_ceiling"])):
            text += (f", {_num(row['percent_of_ceiling'], name, i, 'percent_of_ceiling', 0)}% of the noise ceiling "
                     f"(lower bound {_num(row['ceiling_lower'], name, i, 'ceiling_lower')})")
        lines.append(f"<li>{text}</li>")
    return ("<p><b>Best layer per ROI</b> (RDM correlation):</p><ul>" + "".join(lines) + "</ul>"
            + _general_encoding_summary(tables))


def _general_encoding_summary(tables: dict) -> str:
    """Per ROI, the layer whose encoding models predict held-out images best (mean over subjects)."""
    encoding = tables.get("general_encoding")
    if encoding is None or not len(encoding):
        return ""
    encoding = encoding.reset_index(drop=True)
    keys = [k for k in ("network", "roi") if k in encoding]
    lines = []
    for _, part in encoding.groupby(keys, sort=False):
        means = part.groupby("layer", sort=False)["heldout_accuracy"].mean()
        layer = means.idxmax()
        rows = part[part["layer"] == layer]
        significant = int((rows["p"] < ALPHA).sum()) if "p" in rows else 0
        corrected = f", FDR q &lt; .05 in {int((rows['q_fdr'] < ALPHA).sum())}" if "q_fdr" in rows else ""
        roi = html.escape(str(rows["roi"].iloc[0]))
        lines.append(f"<li><b>{roi}</b>: {html.escape(str(layer))}, held-out accuracy "
                     f"{rows['heldout_accuracy'].mean():.2f} "
                     f"(mean of {len(rows)} subject(s); permutation p &lt; .05 in {significant}{corrected})</li>")
    return ("<p><b>Encoding models</b> (cross-validated accuracy on held-out images; the layer of highest mean "
            "accuracy per ROI):</p><ul>" + "".join(lines) + "</ul>")


def header_section(context: ReportContext) -> str:
    config, versions = context.config, context.versions
    return "\n".join([
        f"<h1>{html.escape(config['study']['name'])}</h1>",
        # nothing here changes from one run to the next (two runs give the same bytes): when it ran and
        # how long each step took are in run.json and steps.csv beside the report
        "<p>Made by brainprobe {}. Device: {}. Seed: {}. {}. When this run happened and how long each step took: "
        "<code>run.json</code> and <code>steps.csv</code> beside this report.</p>".format(
            html.escape(versions.get("brainprobe", "")), html.escape(context.device), config.seed,
            html.escape(_networks_line(config))),
        '<nav><a href="#summary">Summary</a> · <a href="#figures">Figures</a> · <a href="#viewer">Cortex viewer</a> · '
        '<a href="#tables">Tables</a> · <a href="#steps">Steps</a> · <a href="#configuration">Configuration</a></nav>'])


def summary_section(context: ReportContext) -> str:
    """The findings, written from the result tables (every number tagged with its cell)."""
    tables = context.tables
    parts = [_general_summary(tables), _group_summary(tables), _brain_summary(tables), _network_summary(tables),
             _encoding_summary(tables), _best_layer_summary(tables)]
    note = ("<p class='note'>Group-level results (subjects as the random factor) first, then per subject. Estimates "
            "with 95% CIs (each table's resampled column names what was resampled); p-values as in the tables "
            "(permutation tests of similarity &gt; 0, image tests of RE-AI minus RE-AN); <b>*</b>: p &lt; .05, "
            "uncorrected for the number of tests; Benjamini-Hochberg q-values per family of tests are the tables' "
            "q_ columns.</p>")
    if "general_rsa" in tables:
        note = ("<p class='note'>Best layers with 95% intervals of their position over bootstrap samples (of subjects "
                "with two or more subjects, else of images); per-layer p-values in general_rsa (image relabeling) and "
                "general_group (random effects over subjects), uncorrected; their q_fdr columns correct over each "
                "subject's (or the group's) ROI x candidate tests (Benjamini-Hochberg).</p>")
    return ('<section id="summary"><h2>Summary of findings</h2>' + note + _resolution_warning(context.config)
            + "".join(parts) + "</section>")


def _resolution_warning(config) -> str:
    """Say so when too few resamples make p < .05 impossible: a CI that excludes 0 beside a p above
    .05 would otherwise look like a contradiction (or a negative finding)."""
    lines = []
    for section in ("rsa", "encoding"):
        settings = config[section]
        if not settings.get("enabled", True):
            continue
        tails = 1 if settings["alternative"] != "two-sided" else 2
        smallest_boot = min(1.0, tails / (1 + settings["n_boot"])) if settings["n_boot"] else None
        smallest_perm = 1 / (1 + settings["n_perm"]) if settings["n_perm"] else None
        if smallest_boot is not None and smallest_boot >= ALPHA:
            lines.append(f"[{section}] n_boot = {settings['n_boot']}: no {section} bootstrap or subsample p "
                         f"is below {smallest_boot:.3g}")
        if smallest_perm is not None and smallest_perm >= ALPHA:
            lines.append(f"[{section}] n_perm = {settings['n_perm']}: no {section} permutation p is below "
                         f"{smallest_perm:.3g}")
    if not lines:
        return ""
    return ("<p class='note'><b>Too few resamples for p &lt; .05:</b> " + "; ".join(lines)
            + ". The study used 1000 of each.</p>")


def figures_section(context: ReportContext) -> str:
    figures = [p for p in context.result.figures if Path(p).suffix == ".png"]
    tags = [_image_tag(Path(p), figure_caption(Path(p).stem, context.config, context.tables)) for p in figures]
    return '<section id="figures"><h2>Figures</h2>' + "\n".join(tags) + "</section>"


def viewer_section(context: ReportContext) -> str:
    """The searchlight maps on an interactive cortex (WebGL, inline: no server, nothing fetched)."""
    searchlight = context.tables.get("searchlight")
    if searchlight is None or searchlight.empty:
        return ""
    layers = {subject: searchlight_layers(part, context.config, context.tables.get("selection"))
              for subject, part in searchlight.groupby("subject", sort=False)}
    return ('<section id="viewer"><h2>Cortex viewer</h2><p>The searchlight maps of Fig. 4 on the '
            f"{html.escape(context.config['searchlight']['surface'])} surface: drag to turn, wheel to zoom, choose "
            "the map below. Grey: sulcal depth; black: ROI outlines.</p>" + plotting.cortex_viewer(layers) + "</section>")


# the findings' tables first, then what they were computed from
TABLE_ORDER = ("group_rsa", "group_encoding", "brain_rsa", "brain_difference", "brain_rsa_s2", "brain_difference_s2", "network_rsa",
               "network_difference", "network_trend", "encoding", "best_layer_tests", "best_layer_proportions",
               "stimuli")


def tables_section(context: ReportContext) -> str:
    parts = ['<section id="tables"><h2>Tables</h2>']
    # the rest by name: a step's tables come back from the cache in file order, not in the order computed
    names = sorted(context.tables, key=lambda n: (TABLE_ORDER.index(n) if n in TABLE_ORDER else len(TABLE_ORDER), n))
    for name in names:
        frame = context.tables[name]
        parts += [f"<h3>{html.escape(name)}</h3>", _table_html(name, frame)]
    return "\n".join(parts) + "</section>"


def steps_section(context: ReportContext) -> str:
    log = context.result.log
    if log is not None:  # whether a step ran or came from the cache, and its seconds, vary by run: steps.csv
        log = log.drop(columns=[c for c in RUN_SPECIFIC_COLUMNS if c in log])
    return ('<section id="steps"><h2>Steps</h2><p class="note">Each step and the key of its cached result; '
            "whether it ran or was read from the cache, and its seconds: <code>steps.csv</code>.</p>"
            + (log.to_html(index=False) if log is not None else "") + "</section>")


RUN_SPECIFIC_COLUMNS = ("status", "seconds")


def configuration_section(context: ReportContext) -> str:
    # the output folder is the one holding this report, wherever it is now: "." keeps the report the same
    # bytes for a copied or moved study (its absolute path is in run.json)
    shown = copy.copy(context.config)
    shown["study"] = {**shown["study"], "output": "."}
    return (f'<section id="configuration"><h2>Configuration</h2><pre>{html.escape(shown.to_toml())}</pre>'
            "<h2>Versions</h2>" + pd.Series(context.versions, name="version").to_frame().to_html() + "</section>")


# the report's sections in order; another section is one function of a ReportContext returning HTML
REPORT_SECTIONS: list[Callable[[ReportContext], str]] = [
    header_section, summary_section, figures_section, viewer_section, tables_section, steps_section,
    configuration_section,
]


def _networks_line(config) -> str:
    networks = config.networks
    described = [f"{n['label']} ({n['name']}, weights: {n['weights'] or 'none'})" if n["label"] != n["name"]
                 else f"{n['name']} (weights: {n['weights'] or 'none'})" for n in networks]
    line = f"Network: {described[0]}"
    if len(described) > 1:
        line += "; the AN and AI images were made against it. Compared networks: " + ", ".join(described[1:])
    return line


def _png_for_screen(path: Path) -> tuple[bytes, int | None]:
    """The PNG at most `REPORT_IMAGE_WIDTH` px wide (a 300 dpi figure is 2000+ px: MBs per figure),
    and the width in CSS px that shows it at its printed size (None when the file has no dpi)."""
    from PIL import Image

    with Image.open(path) as image:
        dpi = image.info.get("dpi", (None,))[0]
        css_width = round(image.width / float(dpi) * CSS_PX_PER_INCH) if dpi else None
        if image.width <= REPORT_IMAGE_WIDTH:
            return path.read_bytes(), css_width
        height = round(image.height * REPORT_IMAGE_WIDTH / image.width)
        buffer = io.BytesIO()
        image.resize((REPORT_IMAGE_WIDTH, height), Image.LANCZOS).save(buffer, format="PNG", optimize=True)
        return buffer.getvalue(), css_width


def _image_tag(path: Path, caption: str) -> str:
    data, width = _png_for_screen(path)
    size = f' style="width:{width}px"' if width else ""
    return (f'<figure id="{html.escape(path.stem)}"><img alt="{html.escape(path.stem)}"{size} '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}">'
            f"<figcaption>{html.escape(caption)} <span class='file'>({html.escape(path.stem)})</span></figcaption></figure>")


def _encoding_pivot(frame: pd.DataFrame) -> str:
    """Accuracy per (network, subject, ROI) x (layer, kind), the AI-vs-AN p under it."""
    keys = [k for k in ("network", "subject", "roi") if k in frame]
    layers = list(dict.fromkeys(frame["layer"]))
    kinds = list(dict.fromkeys(frame["test_kind"]))
    pivot = frame.pivot_table(index=keys, columns=["layer", "test_kind"], values="accuracy", sort=False)
    pivot = pivot.reindex(columns=pd.MultiIndex.from_product([layers, kinds]))
    if "p_compare" in frame:
        p = frame.dropna(subset=["p_compare"]).pivot_table(index=keys, columns="layer", values="p_compare", sort=False)
        for layer in layers:
            pivot[(layer, "p AI vs AN")] = p[layer] if layer in p else np.nan
        pivot = pivot.reindex(columns=pd.MultiIndex.from_product([layers, [*kinds, "p AI vs AN"]]))
    return pivot.to_html(float_format=lambda v: f"{v:.3g}", na_rep="")


def _table_html(name: str, frame: pd.DataFrame) -> str:
    link = f'<p><a href="results/{html.escape(name)}.csv">results/{html.escape(name)}.csv</a>: {len(frame)} rows</p>'
    if name == "encoding" and {"layer", "test_kind", "accuracy"} <= set(frame):
        return (link + "<p>Accuracy (r) per ROI x layer on AN and AI images, and the p of the AI-vs-AN comparison; "
                "every column is in the CSV.</p>" + f'<div class="wide">{_encoding_pivot(frame)}</div>')
    if name == "best_layer_proportions" and {"roi", "layer", "proportion"} <= set(frame):
        keys = [k for k in ("network", "test_kind", "roi") if k in frame]
        pivot = frame.pivot_table(index=keys, columns="layer", values="proportion", aggfunc="mean", sort=False)
        pivot = pivot.reindex(columns=list(dict.fromkeys(frame["layer"])))
        return (link + "<p>Mean proportion of vertices per best layer over the measurements (subject x repeat); "
                f"each measurement is in the CSV.</p><div class=\"wide\">{pivot.to_html(float_format=lambda v: f'{v:.3f}')}</div>")
    if name in LARGE_TABLES or len(frame) > 4 * TABLE_ROWS_SHOWN:
        return link + f'<div class="wide">{frame.describe().to_html(float_format=lambda v: f"{v:.4g}", na_rep="")}</div>'
    shown = frame.head(TABLE_ROWS_SHOWN).drop(columns=[c for c in ("ci_method",) if c in frame])
    note = f"<p>first {TABLE_ROWS_SHOWN} rows</p>" if len(frame) > TABLE_ROWS_SHOWN else ""
    return link + note + f'<div class="wide">{shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")}</div>'


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
nav{font-size:.9em;margin-bottom:1em}
.wide{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:right;white-space:nowrap}
table.summary td{text-align:left;vertical-align:top}
figure{margin:1.5em 0} img{max-width:100%;height:auto} figcaption{font-size:.85em;color:#333;max-width:60em}
.file{color:#888} .note{font-size:.85em;color:#555}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.8em;white-space:pre-wrap}
"""


def write_report(output: Path, result, config, *, seconds: float, device: str,
                 sections: list[Callable[[ReportContext], str]] | None = None) -> Path:
    """Write ``report.html``: summary, figures with captions, cortex viewer, tables, log, config.

    Everything is inline (figures as PNG data, the viewer's script and meshes): the file opens
    offline and loads nothing from the network. ``sections`` replaces `REPORT_SECTIONS`.
    """
    context = ReportContext(Path(output), result, config, seconds, device, environment())
    body = [section(context) for section in (REPORT_SECTIONS if sections is None else sections)]
    page = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>{html.escape(config['study']['name'])}: brainprobe report</title><style>{STYLE}</style></head><body>",
            *[part for part in body if part], "</body></html>"]
    return atomic_write(Path(output) / "report.html", "\n".join(page))


def summary_numbers(report_html: str) -> list[dict]:
    """The tagged numbers of a report's summary: ``table``, ``row``, ``column``, ``value``, ``text``."""
    from html.parser import HTMLParser

    found: list[dict] = []

    class Reader(HTMLParser):
        current: dict | None = None

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "span" and attrs.get("class") == "n":
                self.current = {"table": attrs["data-table"], "row": int(attrs["data-row"]),
                                "column": attrs["data-column"], "value": float(attrs["data-value"]), "text": ""}

        def handle_data(self, data):
            if self.current is not None:
                self.current["text"] += data

        def handle_endtag(self, tag):
            if tag == "span" and self.current is not None:
                found.append(self.current)
                self.current = None

    start = report_html.find('<section id="summary">')
    end = report_html.find("</section>", start)
    Reader().feed(report_html[start:end] if start >= 0 else "")
    return found

