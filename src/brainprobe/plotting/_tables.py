"""Result tables turned into what a figure draws: square RDMs, MDS points, per-vertex maps.

The study writes these tables to ``results/``; the figures of its report are drawn from them
(and from meshes, for maps), so each can be drawn again from ``results/`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._figures import rdm_figure

__all__ = ["network_rdm_figure", "searchlight_maps"]

ALPHA = 0.05  # a searchlight centre is shown where its family-wise p is below this


def network_rdm_figure(rdms: pd.DataFrame, mds: pd.DataFrame | None = None, *, metric: str = "",
                       columns: str | float = "double"):
    """`rdm_figure` of a ``network_rdms`` table (one network), with its ``network_mds`` panel.

    Parameters
    ----------
    rdms : DataFrame
        ``layer``, ``kind``, ``source_a``, ``source_b``, ``dissimilarity``: per layer and kind
        the upper triangle, row by row, of the RDM over the sources.
    mds : DataFrame, optional
        ``layer``, ``kind``, ``source_id``, ``x``, ``y``: per layer the 2-D MDS of all images.
    metric : str
        The dissimilarity, for the colour bar's label.
    """
    squares: dict[str, dict[str, np.ndarray]] = {}
    labels: list[str] = []
    for (layer, kind), part in rdms.groupby(["layer", "kind"], sort=False):
        # the sources in the RDM's order: every row's first source, then the last column's
        labels = list(dict.fromkeys([*part["source_a"], *part["source_b"]]))
        position = pd.Series(np.arange(len(labels)), index=labels)
        a, b = position.loc[part["source_a"]].to_numpy(), position.loc[part["source_b"]].to_numpy()
        square = np.zeros((len(labels), len(labels)))
        square[a, b] = square[b, a] = part["dissimilarity"].to_numpy(float)
        squares.setdefault(str(layer), {})[str(kind)] = square
    embeddings = None
    if mds is not None:
        embeddings = {str(layer): part[["x", "y", "kind", "source_id"]].reset_index(drop=True)
                      for layer, part in mds.groupby("layer", sort=False)}
    return rdm_figure(squares, labels=labels, embeddings=embeddings, metric=metric, columns=columns)


def searchlight_maps(rows: pd.DataFrame, meshes: Mapping, selection: pd.DataFrame | None = None) -> dict:
    """One subject's ``searchlight`` rows as per-vertex maps on its meshes (Fig. 4, the viewer).

    Parameters
    ----------
    rows : DataFrame
        ``pair``, ``hemi``, ``vertex``, ``similarity`` and optionally ``p_fwe``.
    meshes : mapping of hemi to Mesh
        The surface the maps are drawn on (vertex indices of ``rows`` index it).
    selection : DataFrame, optional
        The subject's ``selection`` rows (``roi``, ``hemi``, ``vertex``): ROI outlines.

    Returns
    -------
    dict
        ``maps`` (pair -> hemi -> values (n_vertices,), NaN off the searchlight), ``shown``
        (pair -> hemi -> bool (n_vertices,): family-wise p < .05; None without ``p_fwe``) and
        ``outlines`` (hemi -> ROI -> bool (n_vertices,); None without ``selection``).
    """
    tested = "p_fwe" in rows and rows["p_fwe"].notna().any()
    maps, shown = {}, {}
    for pair, part in rows.groupby("pair", sort=False):
        maps[pair], shown[pair] = {}, {}
        for hemi, mesh in meshes.items():
            chosen = part[part["hemi"] == hemi]
            vertex = chosen["vertex"].to_numpy(int)
            values = np.full(mesh.n_vertices, np.nan)
            values[vertex] = chosen["similarity"].to_numpy(float)
            maps[pair][hemi] = values
            if tested:
                significant = np.zeros(mesh.n_vertices, bool)
                significant[vertex] = chosen["p_fwe"].to_numpy(float) < ALPHA
                shown[pair][hemi] = significant
    outlines = None
    if selection is not None and "roi" in selection:
        outlines = {hemi: {roi: np.isin(np.arange(mesh.n_vertices), part.loc[part["hemi"] == hemi, "vertex"].to_numpy(int))
                           for roi, part in selection.groupby("roi", sort=False)}
                    for hemi, mesh in meshes.items()}
    return {"maps": maps, "shown": shown if tested else None, "outlines": outlines}
