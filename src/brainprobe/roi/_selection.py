"""Reliability-based vertex selection (paper 001, "Vertex selection")."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._internal import memory_budget_bytes
from ..stats import spearman_brown

__all__ = ["select_reliable_vertices", "neighbourhoods_for_columns", "repeat_splits", "SPLITS"]

SPLITS = ("repeats12", "odd_even", "all")


def neighbourhoods_for_columns(vertices: pd.DataFrame, neighbourhoods: Mapping[str, sp.spmatrix] | sp.spmatrix) -> sp.csr_matrix:
    """Disks over the columns of a `Responses` (its vertex table), from per-hemisphere mesh disks.

    Parameters
    ----------
    vertices : DataFrame with ``hemi`` and ``vertex``
    neighbourhoods : mapping of hemi to sparse (n_mesh_vertices, n_mesh_vertices), or one matrix
        Disks on each hemisphere's mesh (e.g. `geodesic_neighbourhoods`); one matrix is used for
        data without hemispheres. Mesh vertices that have no column (medial wall, dropped
        vertices) are left out of the disks.

    Returns
    -------
    scipy.sparse.csr_matrix (n_columns, n_columns), boolean membership
    """
    if not isinstance(neighbourhoods, Mapping):
        neighbourhoods = {h: neighbourhoods for h in vertices["hemi"].unique()}
    n = len(vertices)
    rows, cols = [], []
    for hemi, part in vertices.groupby("hemi", sort=False):
        if hemi not in neighbourhoods:
            raise KeyError(f"no neighbourhoods for hemisphere {hemi!r}; given {sorted(neighbourhoods)}")
        disks = sp.csr_matrix(neighbourhoods[hemi])
        mesh_vertex = part["vertex"].to_numpy()
        if mesh_vertex.max() >= disks.shape[0]:
            raise ValueError(f"hemisphere {hemi}: vertex index {mesh_vertex.max()} is outside its {disks.shape[0]}-vertex neighbourhoods")
        column_of = np.full(disks.shape[1], -1)
        column_of[mesh_vertex] = part.index.to_numpy()
        sub = disks[mesh_vertex].tocoo()
        target = column_of[sub.col]
        keep = target >= 0
        rows.append(part.index.to_numpy()[sub.row[keep]])
        cols.append(target[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(n, n))


def select_reliable_vertices(
    responses,
    roi,
    neighbourhoods,
    *,
    n_per_hemi: int = 100,
    reference_kind: str = "RE",
    repeats: tuple[int, int] = (1, 2),
    metric: str = "correlation",
    method: str = "spearman",
    split: str | None = None,
    max_splits: int = 20,
    seed=0,
    too_few: str = "raise",
) -> pd.DataFrame:
    """Keep the ROI vertices whose neighbourhood represents the RE images most reliably.

    For every vertex of the ROI, the RDM of the RE images over the vertices in its disk is
    computed from repeat 1 and from repeat 2, and the two RDMs are correlated (Spearman). The
    ``n_per_hemi`` vertices with the highest reliability in each hemisphere are selected (the
    study: 100 per hemisphere from 3 mm disks on the flattened surface). Only trials of
    ``reference_kind`` are read: AN/AI responses never influence the selection.

    Parameters
    ----------
    responses : Responses
    roi : str or bool array (n_vertices,)
        An ROI column of ``responses.vertices`` or a mask.
    neighbourhoods : mapping of hemi to sparse matrix, or one sparse matrix
        Disks on the mesh(es), see `neighbourhoods_for_columns`.
    n_per_hemi : int
    reference_kind : str
    repeats : (int, int)
        The two repeats whose RDMs are compared.
    metric, method : str
        RDM metric and comparison (the study: correlation distance, Spearman).
    split : {None, "repeats12", "odd_even", "all"}
        Which repeats the reliability reads. None or ``"repeats12"``: the two ``repeats``
        (the study's two presentations). ``"odd_even"``: every repeat, the mean of the odd ones
        against the mean of the even ones. ``"all"``: every split of the repeats into halves
        (up to ``max_splits``, drawn at random beyond that), averaged. With every repeat, the
        split-half correlation is Spearman-Brown corrected to the full data (the ranking is the
        same). With one presentation per run, repeats are runs.
    max_splits : int
    seed : int or Generator
        Draws the splits when there are more than ``max_splits``.
    too_few : {"raise", "all"}
        What to do when a hemisphere of the ROI has fewer than ``n_per_hemi`` vertices with a
        defined reliability. ``"raise"`` (default): stop, since "the most reliable" would select
        nothing. ``"all"``: keep every such vertex of that hemisphere and warn (for a
        robustness check such as the study's Fig. S2 with 200 per hemisphere, where a small
        atlas ROI cannot supply them).

    Returns
    -------
    DataFrame
        One row per ROI vertex: ``column`` (index into ``responses``), ``hemi``, ``vertex``,
        ``reliability``, ``rank`` (1 = most reliable within the hemisphere), ``selected``.
        All disks are computed together (sparse matrix products, see
        `brainprobe.rsa.searchlight_rdms`).
    """
    where = f"{responses.subject} ({responses.source})"
    kinds = responses.trials["kind"].to_numpy()
    if not (kinds == reference_kind).any():
        raise ValueError(f"{where}: no trials of kind {reference_kind!r} to select vertices on; kinds are "
                         f"{sorted(set(kinds))}")
    reference = responses.select_trials(kind=reference_kind)  # the only trials read from here on
    if split not in (None, *SPLITS):
        raise ValueError(f"split: expected one of {SPLITS} or None, found {split!r}")
    if isinstance(n_per_hemi, bool) or not isinstance(n_per_hemi, (int, np.integer)) or n_per_hemi < 1:
        raise ValueError(f"n_per_hemi: expected a positive number of vertices per hemisphere, found {n_per_hemi!r}")
    if split in (None, "repeats12"):
        found = set(reference.trials["repeat"])
        if not all(r in found for r in repeats):
            raise ValueError(f"{where}: repeats {repeats}: need {reference_kind} trials from both repeats; its "
                             f"{reference_kind} trials have repeats {sorted(found)}")
    halves = [tuple([r] for r in repeats)] if split in (None, "repeats12") else repeat_splits(
        sorted(reference.trials["repeat"].unique().tolist()), split, max_splits=max_splits, seed=seed)
    mask = responses.roi_mask(roi)
    if not mask.any():
        raise ValueError(f"{where}: ROI {roi if isinstance(roi, str) else '(mask)'} has no vertices")
    centers = np.flatnonzero(mask)
    disks = neighbourhoods_for_columns(responses.vertices, neighbourhoods)[centers]
    # RDMs come from Gram products: a large common offset (betas + 1e6) would leave only its
    # rounding error; correlation and Euclidean distances do not change when one number is
    # subtracted from every beta, cosine does (it is left as given)
    offset = float(np.mean(reference.betas)) if metric != "cosine" else 0.0
    values = []
    for first_repeats, second_repeats in halves:
        first, second = (_half_patterns(reference, chosen, reference_kind) for chosen in (first_repeats, second_repeats))
        shared = [i for i in first[1] if i in set(second[1])]
        if len(shared) < 3:
            raise ValueError(f"{where}: only {len(shared)} {reference_kind} images have trials in both repeats "
                             f"{first_repeats} and {second_repeats}; need at least 3")
        order_first = pd.Series(np.arange(len(first[1])), index=first[1]).loc[shared].to_numpy()
        order_second = pd.Series(np.arange(len(second[1])), index=second[1]).loc[shared].to_numpy()
        first_betas, second_betas = first[0][order_first] - offset, second[0][order_second] - offset
        # every metric's RDMs scale with the betas and a rank comparison ignores the scale: betas of
        # 1e200 (or 1e-200) are brought near 1 so that squares and sums neither overflow nor vanish
        scale = float(max(np.abs(first_betas).max(initial=0.0), np.abs(second_betas).max(initial=0.0)))
        if scale > 0 and not 1e-30 < scale < 1e30:
            first_betas, second_betas = first_betas / scale, second_betas / scale
        values.append(_disk_reliability(first_betas, second_betas, disks, metric, method))
    reliability = np.mean(values, axis=0)
    if split in ("odd_even", "all"):
        reliability = spearman_brown(reliability)
    table = responses.vertices.loc[centers, ["hemi", "vertex"]].reset_index(drop=True)
    table.insert(0, "column", centers)
    table["reliability"] = reliability
    available = table[table["reliability"].notna()].groupby("hemi").size().reindex(table["hemi"].unique(), fill_value=0)
    if too_few not in ("raise", "all"):
        raise ValueError(f"too_few: expected 'raise' or 'all', found {too_few!r}")
    short = available[available < n_per_hemi]
    if len(short):
        name = roi if isinstance(roi, str) else "the ROI"
        found = ", ".join(f"{hemi or '(no hemisphere)'}: {count}" for hemi, count in short.items())
        if too_few == "raise":
            raise ValueError(f"{name} has fewer vertices with a defined reliability than n_per_hemi = {n_per_hemi} "
                             f"({found}); selecting would keep all of them, not the most reliable: lower n_per_hemi")
        warnings.warn(f"{where}: {name} has fewer vertices with a defined reliability than n_per_hemi = "
                      f"{n_per_hemi} ({found}); all of them are kept", UserWarning, stacklevel=2)
    table["rank"] = table.groupby("hemi")["reliability"].rank(ascending=False, method="first", na_option="bottom").astype(int)
    table["selected"] = (table["rank"] <= n_per_hemi) & table["reliability"].notna()
    return table


# float64 copies of a condensed RDM per centre while its two halves are compared: both RDMs, their
# ranks and normalized copies, with room to spare (measured: 6 copies let a 1,000-image block reach
# 1.6x the budget)
_COPIES_PER_CENTRE = 10


def _disk_reliability(first_betas, second_betas, disks, metric: str, method: str) -> np.ndarray:
    """Correlation of each disk's RDM on one half with its RDM on the other: (n_centers,).

    Centres go a block at a time, sized by the memory budget: the RDMs of every ROI vertex at
    once are (n_centers x n_pairs), 12 GB per half for 3,000 vertices and 1,000 images. Each
    centre's value depends only on its own disk, so the blocks change nothing.

    Pearson on correlation, cosine or squared Euclidean RDMs needs no RDM at all: its sums over
    pairs come from each disk's (k x k) Gram matrices (`brainprobe.rsa`'s batched searchlight),
    O(n k^2) per centre instead of O(n^2 k): the way to select vertices among thousands of images
    (``[rsa] method = "pearson"``)."""
    from ..rsa._searchlight import _membership, chunk_similarities, similarity_chunk_centres
    from ..rsa._searchlight_batched import GRAM_METRICS, batched_kind_similarity  # torch: on demand

    n_images = len(first_betas)
    halves = np.concatenate([first_betas, second_betas])
    rows = {"first": np.arange(n_images), "second": n_images + np.arange(n_images)}
    if method == "pearson" and metric in GRAM_METRICS:
        return batched_kind_similarity(halves, rows, disks, reference="first", others=["second"], metric=metric,
                                       method=method, budget=memory_budget_bytes())["second"]
    n_pairs = n_images * (n_images - 1) // 2
    per_centre = _COPIES_PER_CENTRE * 8 * max(n_pairs, 1)
    block = int(max(1, min(disks.shape[0], memory_budget_bytes() // per_centre,
                            similarity_chunk_centres(n_images, method))))
    bounds = [(start, min(disks.shape[0], start + block)) for start in range(0, disks.shape[0], block)]
    # the searchlight's chunks (threads, one BLAS thread each), with the two halves as its two kinds
    return np.concatenate([values["second"] for values in chunk_similarities(
        halves, rows, _membership(disks, halves.shape[1]), bounds, reference="first", others=["second"], metric=metric, method=method)])


def _half_patterns(reference, repeats, kind: str) -> tuple[np.ndarray, list]:
    """Mean pattern per image over the given repeats, and the image ids in row order."""
    part = reference.select_trials(repeat=list(repeats))
    if part.n_trials == 0:
        raise ValueError(f"repeats {list(repeats)}: no {kind} trials")
    patterns, table = part.average_repeats()
    return patterns, table["image_id"].tolist()


def repeat_splits(repeats, split: str = "odd_even", *, max_splits: int = 20, seed=0) -> list[tuple[list, list]]:
    """Halves of the repeats: ``"odd_even"`` (1, 3, 5, ... vs 2, 4, 6, ...) or ``"all"`` splits.

    ``"all"``: every split into two halves once (not its mirror); more than ``max_splits`` are
    sampled at random (the first in lexicographic order would keep repeats 1, 2, 3 together).

    Examples
    --------
    >>> from brainprobe.roi import repeat_splits
    >>> repeat_splits([1, 2, 3, 4], "odd_even")
    [([1, 3], [2, 4])]
    >>> len(repeat_splits([1, 2, 3, 4], "all"))
    3
    """
    repeats = list(repeats)
    if len(repeats) < 2:
        raise ValueError(f"a split-half reliability needs at least 2 repeats, found {repeats}")
    if split == "odd_even":
        return [(repeats[0::2], repeats[1::2])]
    if split != "all":
        raise ValueError(f"split: expected 'odd_even' or 'all', found {split!r}")
    n = len(repeats)
    firsts = [c for c in itertools.combinations(range(n), n // 2) if 0 in c or n % 2]
    if len(firsts) > max_splits:
        chosen = np.random.default_rng(seed).choice(len(firsts), size=max_splits, replace=False)
        firsts = [firsts[i] for i in sorted(chosen)]
    return [([repeats[i] for i in c], [repeats[i] for i in range(n) if i not in c]) for c in firsts]
