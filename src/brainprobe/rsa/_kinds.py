"""RE-AN / RE-AI similarity: one RDM per image kind, compared across kinds (paper 001, eqs. 2-3)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .._device import resolve_device
from .._internal import (
    SUBSAMPLE_CI_METHOD,
    ReferenceCorrelation,
    as_generator,
    bootstrap_p,
    check_resampling,
    correlate_rows,
    direction_label,
    kept_pair_counts,
    normalize_rows,
)
from .._memory import check_allocation, memory_budget_bytes
from .._progress import tqdm
from ..stats import (
    image_bootstrap_rdm_correlations,
    mann_kendall,
    percentile_ci,
    rdm_permutation_test,
    subsample_ci,
)
from ._rdm import rdm

__all__ = ["align_kinds", "kind_similarity", "kind_difference", "layer_trend"]


def _table_of(stimuli) -> pd.DataFrame:
    table = stimuli.table if hasattr(stimuli, "table") else stimuli
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"stimuli: expected a StimulusSet or a DataFrame, found {type(stimuli).__name__}")
    missing = {"image_id", "kind", "source_id"} - set(table.columns)
    if missing:
        raise ValueError(f"stimulus table: missing columns {sorted(missing)} (needs image_id, kind, source_id)")
    return table.reset_index(drop=True)


def align_kinds(stimuli, reference: str = "RE", others: Sequence[str] = ("AN", "AI")) -> tuple[list[str], dict[str, np.ndarray]]:
    """Row positions of each kind, aligned by ``source_id``.

    Only sources present in every kind are kept (a warning says how many were dropped), so all
    kinds' RDMs are over the same images in the same order.

    Returns
    -------
    sources : list of str
        The shared source ids, in the order of the reference kind's rows.
    rows : dict of kind to int array (n_sources,)
        Positions in the table of each kind's image for each source.
    """
    table = _table_of(stimuli)
    kinds = [reference, *others]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"reference and others must be distinct kinds, found {kinds}")
    by_kind = {}
    for kind in kinds:
        part = table[table["kind"] == kind]
        if part.empty:
            raise ValueError(f"stimulus table: no images of kind {kind!r}; kinds present: {sorted(table['kind'].unique())}")
        duplicated = part["source_id"][part["source_id"].duplicated()].unique().tolist()
        if duplicated:
            raise ValueError(
                f"stimulus table: kind {kind!r} has several rows for source_id {duplicated[:3]}; "
                "average repeated presentations first (one pattern per image)"
            )
        by_kind[kind] = pd.Series(part.index.to_numpy(), index=part["source_id"].to_numpy())
    sources = [s for s in by_kind[reference].index if all(s in by_kind[k].index for k in others)]
    dropped = len(by_kind[reference]) - len(sources)
    if dropped:
        warnings.warn(f"{dropped} {reference} images lack a partner of every kind {list(others)} and are left out",
                      stacklevel=3)
    if len(sources) < 3:
        raise ValueError(f"only {len(sources)} sources have an image of every kind {kinds}; need at least 3")
    return sources, {kind: by_kind[kind].loc[sources].to_numpy() for kind in kinds}


def _pattern_sets(patterns, table: pd.DataFrame, image_ids=None) -> dict[str, np.ndarray]:
    """The pattern sets as arrays whose rows are the table's rows, in the table's order.

    Patterns that carry ``image_ids`` (an `Activations`), or given ``image_ids``, are put in the
    table's order. Bare arrays must already be in it: a table whose index is not 0..n-1 in order
    (sorted or filtered after the patterns were made) is refused, since nothing else could tell.
    """
    sets = dict(patterns) if isinstance(patterns, Mapping) else {"patterns": patterns}
    image_ids = getattr(patterns, "image_ids", None) if image_ids is None else image_ids
    wanted = table["image_id"].astype(str).tolist()
    order = None
    if image_ids is not None:
        image_ids = [str(i) for i in image_ids]
        position = {image_id: i for i, image_id in enumerate(image_ids)}
        missing = [i for i in wanted if i not in position]
        if len(position) != len(image_ids) or missing:
            raise ValueError(f"patterns: their image_ids do not match the stimulus table's image_id column "
                             f"({'duplicates' if len(position) != len(image_ids) else f'missing {missing[:3]}'})")
        order = np.asarray([position[i] for i in wanted])
    elif not table.index.equals(pd.RangeIndex(len(table))):
        raise ValueError("stimuli: the table's rows are not in their original order (its index is not 0..n-1), and "
                         "the patterns carry no image_ids to align them; pass an Activations, image_ids=[...] in the "
                         "patterns' row order, or the table as it was (reset_index(drop=True) if the order is right)")
    out = {}
    for name, values in sets.items():
        values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        if np.iscomplexobj(values) or not np.issubdtype(values.dtype, np.number):
            raise ValueError(f"patterns[{name!r}]: expected real numbers, found dtype {values.dtype}")
        expected = len(table) if order is None else len(image_ids)
        if values.ndim != 2 or len(values) != expected:
            raise ValueError(f"patterns[{name!r}]: expected ({expected}, n_units), one row per "
                             f"{'table row' if order is None else 'image id'}, found {values.shape}")
        values = values if order is None else values[order]
        # every RDM metric here scales with the patterns and every comparison ignores a scale:
        # patterns of any magnitude (1e200, 1e-200) are brought near 1 so sums cannot overflow
        scale = float(np.max(np.abs(values))) if values.size and np.issubdtype(values.dtype, np.number) else 0.0
        if np.isfinite(scale) and scale > 0 and not 1e-30 < scale < 1e30:
            values = np.asarray(values, dtype=np.float64) / scale
        out[name] = values
    if not out:
        raise ValueError("patterns: empty")
    return out


UNITS = ("layer", "roi")  # what a unit set is: the name of the column that names it, in every table


def _unit_column(patterns, unit: str | None) -> str:
    """The column that names each unit set: ``unit``, or by default ``"layer"`` for an
    `Activations` (anything with ``.layers``) and ``"roi"`` for other patterns."""
    if unit is None:
        return "layer" if hasattr(patterns, "layers") else "roi"
    if unit not in UNITS:
        raise ValueError(f"unit: expected one of {UNITS} (the column naming each unit set), found {unit!r}")
    return unit


def _unit_of(table: pd.DataFrame, name: str = "similarity") -> str:
    """The column of a `kind_similarity` table that names its unit sets (``layer`` or ``roi``)."""
    found = [column for column in UNITS if column in table]
    if len(found) != 1:
        raise ValueError(f"{name} table: expected one column naming the unit sets, 'layer' or 'roi' (as "
                         f"kind_similarity writes), found columns {list(table.columns)}")
    return found[0]


def _level_name(level: float) -> str:
    return f"ci{round(level * 100):d}"


def kind_similarity(
    patterns,
    stimuli,
    *,
    reference: str = "RE",
    others: Sequence[str] = ("AN", "AI"),
    metric: str = "correlation",
    method: str = "spearman",
    n_perm: int = 1000,
    n_boot: int = 1000,
    boot_fraction: float = 0.8,
    ci_levels: Sequence[float] = (0.68, 0.95),
    alternative: str = "greater",
    seed=0,
    device=None,
    progress: bool | None = None,
    image_ids=None,
    memory_gb: float | None = None,
    unit: str | None = None,
) -> pd.DataFrame:
    """Similarity of the reference kind's RDM to each other kind's RDM, with tests.

    For every unit set (layer, ROI, ...) one RDM per kind is built over the images that share a
    ``source_id``, and ``compare(RDM_reference, RDM_other)`` gives e.g. the RE-AN and RE-AI
    similarities of paper 001 (eqs. 2-3).

    Parameters
    ----------
    patterns : mapping of name to array (n_rows, n_units), an `Activations`, or one array
        Rows aligned with the rows of ``stimuli``.
    stimuli : StimulusSet or DataFrame with ``image_id``, ``kind``, ``source_id``
    reference, others : str
        Image kinds.
    metric : str
        RDM metric, see `rdm`.
    method : str
        RDM comparison, see `compare`.
    n_perm : int
        Label permutations (the other kind's image labels are shuffled relative to the
        reference); 0 skips the test. p = (1 + #(null >= observed)) / (1 + n_perm); with
        ``n_images! <= n_perm`` every relabeling is enumerated and p is exact (``p_exact``).
    n_boot : int
        Resamples of units (vertices) for confidence intervals; 0 skips them. Each draws
        ``boot_fraction`` of the units without replacement (the study: 80%, 1000 times).
    boot_fraction : float
        In (0, 1): the share of units in each resample.
    ci_levels : sequence of float
        Intervals reported (the study: 68% for ROIs, 95% for layers). They are centred on the
        full-data similarity and rescaled for the subsample size (`brainprobe.stats.subsample_ci`):
        the raw percentiles of 80% subsamples are off-centre and about half as wide as the
        sampling spread of the similarity.
    alternative : {"greater", "less", "two-sided"}
        Of the permutation test.
    seed : int, Generator or None
    device : str, optional
        Where RDMs of the bootstrap are computed (CUDA when available).
    progress : bool, optional
        Progress bar over unit sets.
    image_ids : sequence of str, optional
        The image of each pattern row, when ``patterns`` are bare arrays: rows are then put in
        the table's order. Without them bare arrays must be in the order of the table's rows,
        and a table whose index is not 0..n-1 (sorted or filtered since) is refused.
    memory_gb : float, optional
        Memory the permutation and unit-resampling chunks may take, in GiB (default: the
        process-wide budget, `brainprobe.stats.memory_budget`). Results do not depend on it.
    unit : {"layer", "roi"}, optional
        The name of the column naming each unit set (the study's tables use the same). Default
        ``"layer"`` for an `Activations`, ``"roi"`` for other patterns.

    Returns
    -------
    DataFrame
        One row per (unit set, pair): ``layer`` or ``roi`` (``unit``), ``pair`` (e.g. ``"RE-AN"``),
        ``similarity``, ``n_images``, ``n_units``, ``metric``, ``method``, and when requested
        ``p_perm``, ``n_perm`` (relabelings used), ``p_exact`` (every relabeling enumerated),
        ``ci68_low``, ``ci68_high``, ..., ``n_boot``, ``ci_method``.

    Examples
    --------
    >>> from brainprobe.rsa import kind_similarity
    >>> table = kind_similarity(activations, stimuli, n_perm=1000)  # doctest: +SKIP
    >>> table.pivot(index="layer", columns="pair", values="similarity")  # doctest: +SKIP
    """
    if metric not in _GRAM_METRICS:
        raise ValueError(f"metric: kind_similarity supports {_GRAM_METRICS} (crossnobis needs runs: build its "
                         f"RDMs with rdm(..., runs=, conditions=) and compare them), found {metric!r}")
    check_resampling(n_perm=n_perm, n_boot=n_boot, boot_fraction=boot_fraction)
    if n_boot and not 0 < boot_fraction < 1:
        raise ValueError(f"boot_fraction: expected a value in (0, 1) (the share of units in each resample), "
                         f"found {boot_fraction}")
    raw = stimuli.table if hasattr(stimuli, "table") else stimuli
    table = _table_of(stimuli)
    sets = _pattern_sets(patterns, raw if isinstance(raw, pd.DataFrame) else table, image_ids)
    column = _unit_column(patterns, unit)
    sources, rows = align_kinds(table, reference, others)
    rng = as_generator(seed)
    perm_rng, boot_rng = rng.spawn(2)
    records = []
    rdms = {name: {kind: rdm(values[index], metric, device=device) for kind, index in rows.items()}
            for name, values in sets.items()}
    names = list(sets)
    if n_boot:  # every resample's similarities, kept for the intervals
        check_allocation(n_boot * len(others) * 8 * 4, f"kind_similarity with n_boot = {n_boot}",
                         "lower n_boot ([rsa] n_boot in a study file; 1000 is the default)")
    flat = _flat_rdms(rdms, sets, rows, metric)
    p_values = {}
    if n_perm:
        # one call per pair, all unit sets together: every unit set sees the same permutations
        for other in others:
            result = rdm_permutation_test(
                np.stack([rdms[n][reference] for n in names]), np.stack([rdms[n][other] for n in names]),
                method=method, n_perm=n_perm, seed=perm_rng, alternative=alternative, memory_gb=memory_gb,
            )
            p_values[other] = dict(zip(names, result.p, strict=True))
            n_relabelings, exact = result.null.shape[1], result.exact
    bar = tqdm(names, desc="kind similarity", unit="set", disable=(len(names) < 2 or None) if progress is None else not progress)
    for name in bar:
        n_units = sets[name].shape[1]
        # the reference RDM ranked once for all pairs (50 million entries at 10,000 images)
        target = ReferenceCorrelation(torch.from_numpy(np.asarray(rdms[name][reference], np.float64)), method)
        estimates = np.array([target.against(torch.from_numpy(np.asarray(rdms[name][other], np.float64)))
                              for other in others])
        del target
        intervals = {}
        if n_boot:
            samples = _unit_bootstrap(sets[name], rows, reference, others, metric, method, n_boot,
                                      boot_fraction, boot_rng, device, memory_gb)
            n_sub = _subsample_size(boot_fraction, n_units)
            if n_sub >= n_units:
                raise ValueError(f"patterns[{name!r}]: {n_units} units is too few to resample {boot_fraction:.0%} "
                                 "of them (need a subsample smaller than the set); set n_boot = 0")
            for level in ci_levels:
                intervals[level] = subsample_ci(samples, estimates, n_units, n_sub, level, axis=0,
                                                bounds=(-1.0, 1.0))
        for k, other in enumerate(others):
            record = {
                column: name,
                "pair": f"{reference}-{other}",
                "similarity": estimates[k],
                "n_images": len(sources),
                "n_units": n_units,
                "metric": metric,
                "method": method,
            }
            if n_perm:
                record.update(p_perm=float(p_values[other][name]), n_perm=n_relabelings, p_exact=exact)
            for level, (low, high) in intervals.items():
                record[f"{_level_name(level)}_low"] = float(low[k])
                record[f"{_level_name(level)}_high"] = float(high[k])
            if n_boot:
                record.update(n_boot=n_boot, ci_method=SUBSAMPLE_CI_METHOD)
            if flat.get((name, reference)) or flat.get((name, other)):
                _undefined(record, name, f"{reference}-{other}", flat.get((name, reference)) or flat[(name, other)])
            records.append(record)
    return pd.DataFrame.from_records(records)


# an RDM whose values spread less than this share of the metric's scale is constant: its ranks
# would be those of float noise
_FLAT_TOLERANCE = 1e-9


def _flat_rdms(rdms: dict, sets: dict, rows: dict, metric: str) -> dict:
    """``{(unit set, kind): reason}`` for each RDM that is constant (its images' patterns do not
    differ in the metric's terms), on which no correlation is defined."""
    flat = {}
    for name, by_kind in rdms.items():
        for kind, values in by_kind.items():
            values = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, float)
            patterns = np.asarray(sets[name][rows[kind]], float)
            if metric in ("correlation", "cosine"):
                scale = 1.0
            else:
                norm = float(np.max(np.linalg.norm(patterns, axis=1))) if patterns.size else 0.0
                scale = norm ** 2 if metric == "squared_euclidean" else norm
            if values.size and (np.ptp(values) <= _FLAT_TOLERANCE * scale or scale == 0):
                flat[(name, kind)] = f"the {kind} RDM is constant (its {len(patterns)} patterns do not differ)"
    return flat


def _undefined(record: dict, name: str, pair: str, reason: str) -> None:
    """Set a record's estimate, p and interval to NaN, and say why."""
    for column in list(record):
        if column in ("similarity", "difference", "p_perm", "p_boot", "p_greater", "p_less") or \
                column.endswith(("_low", "_high")):
            record[column] = float("nan")
    warnings.warn(f"{name} {pair}: not defined, {reason}; the row holds NaN", stacklevel=3)


# the metrics that are functions of per-image sums and the Gram matrix (crossnobis needs runs)
_GRAM_METRICS = ("correlation", "cosine", "euclidean", "squared_euclidean")


def _unit_bootstrap(values, rows, reference, others, metric, method, n_boot, fraction, rng, device, memory_gb=None):
    """Similarities (n_boot, n_others) of the reference kind's RDM with the others' on unit subsamples.

    Exactly ``k`` units are drawn per resample (the ``k`` smallest of uniform keys: a uniform
    draw without replacement). Each resample's RDMs come from the Gram matrix of the drawn
    units, one BLAS product per tile of image rows, written in condensed order
    (`_subsample_rdm`, into two RDMs' memory kept for every resample); nothing of size
    (units x pairs) or (resamples x pairs) is formed. Each RDM is then sorted once
    (`ReferenceCorrelation`: on a CPU each pair's position in the reference rides through the
    other kinds' sorts).

    What one resample holds (two RDMs, the reference's sorted keys and positions, a sort's keys) cannot be
    split for a rank correlation; it is checked against the memory available. The budget bounds
    the uniform keys drawn at once; tiles have a fixed size, so no result depends on it.
    """
    device = resolve_device(device)
    n_units = values.shape[1]
    k = _subsample_size(fraction, n_units)
    n_src = len(rows[reference])
    n_pairs = n_src * (n_src - 1) // 2
    check_allocation(8 * 6 * n_pairs, f"a unit subsample of {n_src} images ({n_pairs:,} pairs per RDM)",
                     "compare fewer images, or set n_boot = 0")
    # RDMs this small are built and compared for a group of resamples at once (per-resample
    # calls would cost more than the arithmetic); the group depends on the sizes only, never on
    # the budget, so each resample's arithmetic is the same whatever the budget
    group = max(1, _TILE_ELEMENTS // (n_src * (n_src + n_units)))
    patterns = {}
    for kind in rows:
        x = torch.as_tensor(np.asarray(values[rows[kind]], dtype=np.float64), device=device)
        if metric == "correlation":  # a constant per image changes no subset correlation; it lowers cancellation
            x = x - x.mean(dim=1, keepdim=True)
        patterns[kind] = x if group == 1 else x.T.contiguous().T  # small: units gathered as rows
    batch = max(1, min(n_boot, memory_budget_bytes(memory_gb) // (8 * 4 * n_units)))
    batch = max(group, batch // group * group)  # whole groups: a group's products never split
    out = np.empty((n_boot, len(others)))
    target = None  # one ReferenceCorrelation, and two RDMs' memory, reused by every resample
    if group == 1:  # (groups build their small RDMs together)
        reference_rdm, other_rdm = (torch.empty(n_pairs, dtype=torch.float64, device=device) for _ in range(2))
    for start in range(0, n_boot, batch):
        size = min(batch, n_boot - start)
        keys = rng.random((size, n_units))  # the same stream whatever the batch
        threshold = np.partition(keys, k - 1, axis=1)[:, k - 1:k]
        drawn = np.nonzero(keys <= threshold)[1].reshape(size, k)  # exactly k per row, ascending
        del keys
        for first in range(0, size, group):
            units = torch.as_tensor(drawn[first:first + group], device=device)
            rows_out = slice(start + first, start + first + len(units))
            if group > 1:
                out[rows_out] = _compare_small(patterns, units, reference, others, metric, method)
                continue
            # memory reused: fresh pages of the 2.2 GB these take at 10,000 images cost seconds
            rdm = _subsample_rdm(patterns[reference][:, units[0]], metric, reference_rdm)
            if target is None:
                target = ReferenceCorrelation(rdm, method)
            else:
                target.set_reference(rdm)
            for o, other in enumerate(others):
                out[rows_out, o] = target.against(_subsample_rdm(patterns[other][:, units[0]], metric, other_rdm))
    return out


def _compare_small(patterns, units, reference, others, metric, method) -> np.ndarray:
    """Similarities (g, n_others) of ``g`` resamples whose RDMs are built all at once: each
    kind's drawn units (g, k, n), one batched product, the upper triangles, one ranking."""
    n = patterns[reference].shape[0]
    upper = torch.triu_indices(n, n, 1, device=units.device)
    rdms = {}
    for kind in (reference, *others):
        drawn = patterns[kind].T[units]  # (g, k, n): the drawn units' rows, from contiguous unit rows
        cross = drawn.transpose(1, 2) @ drawn
        own, means = _own_and_means(drawn, -2, metric)
        square = _distances(cross, own, means, own, means, units.shape[1], metric)
        rdms[kind] = square[:, upper[0], upper[1]].cpu().numpy()
    if method == "kendall_tau_a":
        return np.stack([correlate_rows(rdms[reference], rdms[o], method) for o in others], axis=1)
    target = normalize_rows(rdms[reference], method)
    return np.stack([np.einsum("ij,ij->i", target, normalize_rows(rdms[o], method)) for o in others], axis=1)


def _subsample_size(fraction: float, n_units: int) -> int:
    return max(2, int(round(fraction * n_units)))


# elements of one tile of Gram rows: a fixed size (16 MiB of float64), so the products, and
# every distance, are the same whatever the memory budget
_TILE_ELEMENTS = 1 << 21


def _subsample_rdm(x: torch.Tensor, metric: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """Condensed RDM (n (n - 1) / 2,) of the patterns ``x`` (n, k) of the drawn units, written
    into ``out`` (float64, on ``x``'s device) when given.

    Rows ``a:b`` of the upper triangle are one product ``x[a:b] @ x[a:].T`` and a contiguous
    stretch of the condensed order. The distances are those `rdm` gives, from Gram entries: for
    correlation the drawn units' means come off the products (the patterns were centred on all
    units, which keeps the cancellation small).
    """
    n, k = x.shape
    own, means = _own_and_means(x, -1, metric)
    out = torch.empty(n * (n - 1) // 2, dtype=torch.float64, device=x.device) if out is None else out
    rows = max(1, _TILE_ELEMENTS // max(n, 1))
    start = 0  # where row a's pairs (a, a + 1), ..., (a, n - 1) begin in condensed order
    for a in range(0, n - 1, rows):
        b = min(n - 1, a + rows)
        tile = _distances(x[a:b] @ x[a:].T, own[a:b], means[a:b], own[a:], means[a:], k, metric)  # column c: image a + c
        for r in range(b - a):  # row by row: plain copies, no (tile-sized) mask
            stop = start + n - 1 - (a + r)
            out[start:stop] = tile[r, r + 1:]
            start = stop
    return out


def _own_and_means(x: torch.Tensor, axis: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the sum of squares over the drawn units of ``x`` (along ``axis``), for
    correlation their variance, and their mean."""
    k = x.shape[axis]
    own, means = (x * x).sum(dim=axis), x.sum(dim=axis) / k
    return (own / k - means * means if metric == "correlation" else own), means


def _distances(cross, own_r, mean_r, own_c, mean_c, k: int, metric: str) -> torch.Tensor:
    """Distances, as `rdm` defines them, between images of rows and columns from their products
    ``cross`` (..., r, c) over ``k`` drawn units and `_own_and_means` of each side (..., r) and
    (..., c); correlation takes the drawn units' means off the products (the patterns were
    centred on all units, which keeps the cancellation small)."""
    if metric == "correlation":
        cross = cross / k - mean_r[..., :, None] * mean_c[..., None, :]
    if metric in ("correlation", "cosine"):
        return 1.0 - cross / (own_r.clamp_min(0).sqrt()[..., :, None] * own_c.clamp_min(0).sqrt()[..., None, :])
    squared = (own_r[..., :, None] + own_c[..., None, :] - 2.0 * cross).clamp_min(0)
    return squared.sqrt() if metric == "euclidean" else squared / k


def kind_difference(
    patterns,
    stimuli,
    *,
    reference: str = "RE",
    first: str = "AI",
    second: str = "AN",
    metric: str = "correlation",
    method: str = "spearman",
    n_boot: int = 1000,
    level: float = 0.95,
    alternative: str = "two-sided",
    seed=0,
    image_ids=None,
    memory_gb: float | None = None,
    unit: str | None = None,
) -> pd.DataFrame:
    """Bootstrap test over images of sim(reference, first) - sim(reference, second).

    Sources (image triplets) are resampled with replacement and both similarities recomputed
    on each resample. A source drawn twice would put a zero dissimilarity between its two
    copies into every RDM, inflating the similarity; those entries are left out of each
    resample (the handling rsatoolbox uses for pattern bootstraps). RDMs are computed once; a
    resample only gathers their entries.

    Parameters
    ----------
    patterns, stimuli, reference, metric, method, seed, image_ids, unit
        As in `kind_similarity`.
    first, second : str
        The kinds whose similarities to the reference are contrasted (default RE-AI minus RE-AN).
    n_boot : int
    level : float
        Percentile interval of the difference.
    alternative : {"two-sided", "greater", "less"}
        H1 for the difference, reported as ``p_boot``. "two-sided" (default) can show either
        direction (the study found RE-AI > RE-AN in layers 1-7 and the reverse at layer 8);
        "greater": first more similar to the reference than second.
    memory_gb : float, optional
        Memory the resamples gathered at once may take, in GiB (default: the process-wide
        budget, `brainprobe.stats.memory_budget`). Results do not depend on it.

    Returns
    -------
    DataFrame
        One row per unit set: ``layer`` or ``roi`` (``unit``), ``comparison``, ``difference``, ``direction``
        (e.g. ``"RE-AI > RE-AN"``, from the sign of the difference), ``ci95_low``,
        ``ci95_high``, ``p_boot`` (of ``alternative``), ``alternative``, ``p_greater`` =
        (1 + #(bootstrap differences <= 0)) / (1 + n_boot) (H1: first > second), ``p_less``
        (its mirror), ``n_boot``, ``n_images``, ``mean_pairs_used`` (image pairs left in a
        resample once the pairs of a source drawn twice are left out).
    """
    check_resampling(n_boot=n_boot)
    if n_boot < 1:
        raise ValueError(f"n_boot: kind_difference's interval and p come from image resamples; expected at least 1 "
                         f"(1000 by default), found {n_boot}")
    raw = stimuli.table if hasattr(stimuli, "table") else stimuli
    table = _table_of(stimuli)
    sets = _pattern_sets(patterns, raw if isinstance(raw, pd.DataFrame) else table, image_ids)
    column = _unit_column(patterns, unit)
    sources, rows = align_kinds(table, reference, (first, second))
    n = len(sources)
    # what is held for all resamples: the drawn images (int64) and one difference per resample;
    # each resample's RDM entries are never gathered (`image_bootstrap_rdm_correlations`)
    check_allocation(n_boot * (8 * n + 8 * 4), f"kind_difference with n_boot = {n_boot} on {n} images",
                     "lower n_boot ([rsa] n_boot in a study file; 1000 is the default)")
    # one stream of draws shared by every unit set
    draws = as_generator(seed).integers(0, n, size=(n_boot, n))
    pairs_used = float(kept_pair_counts(draws, n).sum())
    records = []
    all_rdms = {name: {kind: rdm(values[index], metric) for kind, index in rows.items()}
                for name, values in sets.items()}
    flat = _flat_rdms(all_rdms, sets, rows, metric)
    for name, rdms in all_rdms.items():
        # the reference's correlation with both kinds on the same resamples, its RDM sorted once
        both = image_bootstrap_rdm_correlations(rdms[reference], np.stack([rdms[first], rdms[second]]),
                                                method=method, indices=draws, memory_gb=memory_gb)
        samples = both[:, 0, 0] - both[:, 0, 1]
        observed = float(correlate_rows(rdms[reference], rdms[first], method)
                         - correlate_rows(rdms[reference], rdms[second], method))
        low, high = percentile_ci(samples, level, axis=0)
        records.append({
            column: name,
            "comparison": f"{reference}-{first} minus {reference}-{second}",
            "difference": observed,
            "direction": direction_label(observed, f"{reference}-{first}", f"{reference}-{second}"),
            f"{_level_name(level)}_low": float(low),
            f"{_level_name(level)}_high": float(high),
            "p_boot": float(bootstrap_p(samples, 0.0, alternative)),
            "alternative": alternative,
            "p_greater": float(bootstrap_p(samples, 0.0, "greater")),
            "p_less": float(bootstrap_p(samples, 0.0, "less")),
            "n_boot": n_boot,
            "n_images": n,
            "mean_pairs_used": pairs_used / n_boot if n_boot else float("nan"),
        })
        reasons = [flat[(name, kind)] for kind in (reference, first, second) if (name, kind) in flat]
        if reasons:
            _undefined(records[-1], name, records[-1]["comparison"], reasons[0])
            records[-1]["direction"] = "undefined"
    return pd.DataFrame.from_records(records)


def layer_trend(similarity: pd.DataFrame, *, order: Sequence[str] | None = None,
                alternative: str = "two-sided", exact="auto") -> pd.DataFrame:
    """Mann-Kendall trend of each pair's similarity across unit sets (layers), in order.

    Two p-values are reported: the exact one and the normal approximation with continuity
    correction (the one paper 001 gives: its p = 0.009 for RE-AI is S = -22 over 8 layers under
    the approximation; the exact p is 0.0055). ``p`` is the one ``exact`` chooses and
    ``p_method`` says which: by default exact up to 10 layers (9 when similarities tie), the
    normal approximation beyond. ``p_exact`` is NaN where it is not enumerated (ties and more
    than 9 layers), and the normal p is then the only one.

    Parameters
    ----------
    similarity : DataFrame
        The output of `kind_similarity`.
    order : sequence of str, optional
        Unit sets from first to last; default their order of appearance.
    alternative : {"two-sided", "increasing", "decreasing"}
    exact : bool or "auto"
        Which p-value is ``p``: True the exact one, False the normal approximation (the
        paper's), "auto" exact up to 10 layers. See `brainprobe.stats.mann_kendall`.

    Returns
    -------
    DataFrame
        One row per pair: ``pair``, ``n``, ``s``, ``tau``, ``var_s``, ``z``, ``p``,
        ``p_method``, ``p_exact``, ``p_normal``, ``alternative``, ``slope``, ``trend``.
    """
    column = _unit_of(similarity)
    order = list(dict.fromkeys(similarity[column])) if order is None else list(order)
    records = []
    for pair, part in similarity.groupby("pair", sort=False):
        series = part.set_index(column)["similarity"]
        missing = [u for u in order if u not in series.index]
        if missing:
            raise ValueError(f"layer_trend: pair {pair!r} has no similarity for {missing}")
        result = mann_kendall(series.loc[order].to_numpy(), alternative=alternative, exact=exact).to_dict()
        result["p_method"] = result.pop("method")
        del result["intercept"]
        records.append({"pair": pair, **result})
    columns = ["pair", "n", "s", "tau", "var_s", "z", "p", "p_method", "p_exact", "p_normal", "alternative",
               "slope", "trend"]
    return pd.DataFrame.from_records(records)[columns]
