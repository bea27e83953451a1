"""Figures of a finished study and its self-contained ``report.html``."""

from __future__ import annotations

import base64
import datetime
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plotting
from ..rsa import align_kinds, rdm, square_rdm
from ._cache import atomic_write

__all__ = ["make_figures", "write_report"]

# tables with one row per vertex: the report shows their size and a link, not their rows
LARGE_TABLES = ("searchlight", "selection", "best_layer")
TABLE_ROWS_SHOWN = 60


def make_figures(tables: dict, stimuli, analysed: dict, config, folder: Path) -> list[Path]:
    """Draw every figure the tables allow; return the paths written (all formats).

    ``analysed`` maps each network's label to its ``activations`` and ``layers``; with more than
    one network, the per-network figures (5, 6, S1, RDMs) get the label in their file names.
    """
    formats, dpi = config["figures"]["formats"], config["figures"]["dpi"]
    written: list[Path] = []

    def save(figure, name):
        written.extend(plotting.save_figure(figure, folder / name, formats, dpi=dpi))

    described = tables["stimuli"].set_index("image_id").loc[stimuli.image_ids].reset_index()
    save(plotting.stimulus_grid(stimuli.numpy(), described), "fig1_stimuli")
    if "brain_rsa" in tables:
        save(plotting.kind_bars(tables["brain_rsa"], tables.get("brain_difference"), ci="ci68"), "fig3_brain_rsa")
    if "brain_rsa_s2" in tables:
        n = config["selection"]["n_per_hemi_s2"]
        save(plotting.kind_bars(tables["brain_rsa_s2"], tables.get("brain_difference_s2"), ci="ci68",
                                title=f"RE-AN and RE-AI similarity, {2 * n} vertices per ROI"), "figS2_brain_rsa")
    if "searchlight" in tables:
        for subject, part in tables["searchlight"].groupby("subject", sort=False):
            meshes, maps = _searchlight_maps(part, config)
            save(plotting.cortical_map(maps, meshes, views=("dorsal",) if config["searchlight"]["surface"] == "flat"
                                       else ("lateral", "medial"),
                                       title=f"{subject}: searchlight RDM similarity ({config['searchlight']['surface']} surface)"),
                 f"fig4_searchlight_{subject}")
    names = {network["label"]: network["name"] for network in config.networks}
    for label, network in analysed.items():
        suffix = f"_{label}" if len(analysed) > 1 else ""
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
        save(plotting.rdm_panels(_network_rdms(network["activations"], stimuli, network["layers"], config), columns=3),
             f"rdms_network{suffix}")
    return written


def _searchlight_maps(part: pd.DataFrame, config) -> tuple[dict, dict]:
    from ._steps import study_meshes

    subject_meshes = _subject_meshes(part["subject"].iloc[0], config)
    meshes = study_meshes(subject_meshes, config["searchlight"]["surface"]) if isinstance(subject_meshes, str) \
        else study_meshes(subject_meshes)
    maps = {}
    for pair, rows in part.groupby("pair", sort=False):
        maps[pair] = {}
        for hemi, mesh in meshes.items():
            values = np.full(mesh.n_vertices, np.nan)
            chosen = rows[rows["hemi"] == hemi]
            values[chosen["vertex"].to_numpy(int)] = chosen["similarity"].to_numpy(float)
            maps[pair][hemi] = values
    return meshes, maps


def _subject_meshes(subject: str, config):
    for entry in config["subject"]:
        if entry["id"] == subject:
            return entry["meshes"]
    return config["subjects"]["mesh"]


def _network_rdms(activations, stimuli, layers, config) -> dict:
    """RE, AN and AI RDMs of the first, middle and last layer (rows in source order)."""
    _, rows = align_kinds(stimuli.table)
    chosen = list(dict.fromkeys([layers[0], layers[len(layers) // 2], layers[-1]]))
    return {f"{layer} · {kind}": square_rdm(rdm(np.asarray(activations[layer])[index], config["rsa"]["metric"]))
            for layer in chosen for kind, index in rows.items()}


def _networks_line(config) -> str:
    networks = config.networks
    described = [f"{n['label']} ({n['name']}, weights: {n['weights'] or 'none'})" if n["label"] != n["name"]
                 else f"{n['name']} (weights: {n['weights'] or 'none'})" for n in networks]
    line = f"Network: {described[0]}"
    if len(described) > 1:
        line += "; the AN and AI images were made against it. Compared networks: " + ", ".join(described[1:])
    return line


def _image_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(path.stem)}</figcaption></figure>'


def _table_html(name: str, frame: pd.DataFrame) -> str:
    link = f'<p><a href="results/{html.escape(name)}.csv">results/{html.escape(name)}.csv</a>: {len(frame)} rows</p>'
    if name in LARGE_TABLES or len(frame) > 4 * TABLE_ROWS_SHOWN:
        return link + frame.describe(include="all").head(4).to_html(float_format=lambda v: f"{v:.4g}", na_rep="")
    shown = frame.head(TABLE_ROWS_SHOWN)
    note = f"<p>first {TABLE_ROWS_SHOWN} rows</p>" if len(frame) > TABLE_ROWS_SHOWN else ""
    return link + note + shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0} td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
figure{margin:1em 0} img{max-width:100%} figcaption{font-size:.8em;color:#555}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.8em}
"""


def write_report(output: Path, result, config, *, seconds: float, device: str) -> Path:
    """Write ``report.html``: figures embedded as PNG data, tables, step log, config, versions."""
    from ._study import environment

    versions = environment()
    figures = [p for p in result.figures if p.suffix == ".png"]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(config['study']['name'])}: brainprobe report</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(config['study']['name'])}</h1>",
        "<p>Made by brainprobe {} on {} in {:.0f} s. Device: {}. Seed: {}. {}.</p>".format(
            html.escape(versions.get("brainprobe", "")), datetime.datetime.now().isoformat(timespec="seconds"), seconds,
            html.escape(device), config.seed, html.escape(_networks_line(config))),
        "<h2>Figures</h2>", *[_image_tag(p) for p in figures],
        "<h2>Tables</h2>",
    ]
    for name, frame in result.tables.items():
        parts += [f"<h3>{html.escape(name)}</h3>", _table_html(name, frame)]
    parts += ["<h2>Steps</h2>", result.log.to_html(index=False) if result.log is not None else "",
              "<h2>Configuration</h2>", f"<pre>{html.escape(config.to_toml())}</pre>",
              "<h2>Versions</h2>", pd.Series(versions, name="version").to_frame().to_html(),
              "</body></html>"]
    return atomic_write(output / "report.html", "\n".join(parts))
