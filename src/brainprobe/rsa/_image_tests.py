"""RE-AN / RE-AI inference over images: image-bootstrap intervals of each similarity, an image
relabeling test of the AI-vs-AN difference, and a trend test over layers whose null keeps the
layers' correlation.

The subsample intervals of `kind_similarity` (the paper's) hold the images fixed and resample
vertices or units; these resample images, the random factor of a stimulus set, so they say how
the similarity would vary over another draw of images from the same distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._internal import (
    JACKKNIFE_CI_METHOD,
    RESAMPLED_IMAGES,
    as_generator,
    check_resampling,
    correlate_rows,
    normalize_rows,
    paired_swap_relabelings,
)
from ..stats import (
    image_bootstrap_rdm_correlations,
    jackknife_ci,
    leave_one_out,
    percentile_ci,
    relabeling_test,
    trend_bootstrap_test,
)
from ._kinds import (
    _GRAM_METRICS,
    _level_name,
    _pattern_sets,
    _table_of,
    _unit_column,
    _unit_of,
    align_kinds,
)
from ._rdm import rdm, square_rdm

__all__ = ["kind_image_bootstrap", "kind_image_ci", "kind_difference_test", "layer_trend_bootstrap"]


def _prepared(patterns, stimuli, reference, others, image_ids, metric):
    if metric not in _GRAM_METRICS:
        raise ValueError(f"metric: expected one of {_GRAM_METRICS}, found {metric!r}")
    raw = stimuli.table if hasattr(stimuli, "table") else stimuli
    table = _table_of(stimuli)
    sets = _pattern_sets(patterns, raw if isinstance(raw, pd.DataFrame) else table, image_ids)
    sources, rows = align_kinds(table, reference, tuple(others))
    return sets, sources, rows


def kind_image_bootstrap(patterns, stimuli, *, reference: str = "RE", others: Sequence[str] = ("AN", "AI"),
                         metric: str = "correlation", method: str = "spearman", n_boot: int = 1000,
                         ci_levels: Sequence[float] = (0.68, 0.95), seed=0, image_ids=None,
                         return_samples: bool = False, unit: str | None = None):
    """Image-bootstrap intervals of the reference kind's RDM similarity to each other kind.

    Sources (image triplets) are drawn with replacement; the RDM entries between a source and
    its own copy (a zero distance that no real pair of images has) are left out of the
    resample, as rsatoolbox's image bootstrap does; the similarity is recomputed on the kept
    entries. Percentile intervals.

    Parameters
    ----------
    patterns, stimuli, reference, others, metric, method, image_ids, unit
        As in `kind_similarity`.
    n_boot : int
    ci_levels : sequence of float
    seed : int, Generator or None
    return_samples : bool
        Also return the resampled similarities (for `layer_trend_bootstrap`).

    Returns
    -------
    DataFrame
        One row per (unit set, pair): ``layer`` or ``roi`` (``unit``), ``pair``, ``ci68_low``, ..., ``n_boot_images``, ``resampled``
        (= "images").
    samples : dict of pair to array (n_boot, n_sets), only with ``return_samples``
        Every unit set's similarity on the same image resamples.
    """
    check_resampling(n_boot=n_boot)
    sets, sources, rows = _prepared(patterns, stimuli, reference, others, image_ids, metric)
    n = len(sources)
    draws = as_generator(seed).integers(0, n, size=(n_boot, n))
    records, samples = [], {f"{reference}-{o}": np.empty((n_boot, len(sets))) for o in others}
    for s, (name, values) in enumerate(sets.items()):
        rdms = {kind: rdm(values[index], metric) for kind, index in rows.items()}
        # every other kind against the reference on the same resamples; no resample is gathered
        resampled_all = image_bootstrap_rdm_correlations(rdms[reference], np.stack([rdms[o] for o in others]),
                                                         method=method, indices=draws)[:, 0]
        for o, other in enumerate(others):
            resampled = resampled_all[:, o]
            samples[f"{reference}-{other}"][:, s] = resampled
            record = {_unit_column(patterns, unit): name, "pair": f"{reference}-{other}"}
            for level in ci_levels:
                low, high = percentile_ci(resampled, level)
                record[f"{_level_name(level)}_low"] = float(low)
                record[f"{_level_name(level)}_high"] = float(high)
            record.update(n_boot_images=n_boot, resampled=RESAMPLED_IMAGES)
            records.append(record)
    table = pd.DataFrame.from_records(records)
    return (table, samples) if return_samples else table


def kind_image_ci(patterns, stimuli, *, reference: str = "RE", others: Sequence[str] = ("AN", "AI"),
                  metric: str = "correlation", method: str = "spearman", ci_levels: Sequence[float] = (0.68, 0.95),
                  image_ids=None, unit: str | None = None) -> pd.DataFrame:
    """Intervals over images of the reference kind's RDM similarity to each other kind.

    Delete-one-source jackknife (each source's images left out of every kind's RDM in turn),
    with t(n_sources - 1) quantiles (`brainprobe.stats.jackknife_ci`): measured under spatially
    smooth data it covers at the nominal 95%, where the percentile image bootstrap is
    conservative (98%; `kind_image_bootstrap`). ``unit`` names the column of the unit sets, as
    in `kind_similarity`.

    Returns
    -------
    DataFrame
        One row per (unit set, pair): ``layer`` or ``roi`` (``unit``), ``pair``, ``ci68_low``, ..., ``ci_method``,
        ``resampled`` (= "images").
    """
    sets, sources, rows = _prepared(patterns, stimuli, reference, others, image_ids, metric)
    n = len(sources)
    kept = leave_one_out(n)
    upper_rows, upper_cols = np.triu_indices(n - 1, 1)
    first, second = kept[:, upper_rows], kept[:, upper_cols]
    records = []
    for name, values in sets.items():
        squares = {kind: square_rdm(rdm(values[index], metric)) for kind, index in rows.items()}
        full_ref = rdm(values[rows[reference]], metric)
        ref = squares[reference][first, second]
        for other in others:
            estimate = float(correlate_rows(full_ref, rdm(values[rows[other]], metric), method))
            left_out = correlate_rows(ref, squares[other][first, second], method)
            record = {_unit_column(patterns, unit): name, "pair": f"{reference}-{other}"}
            for level in ci_levels:
                low, high = jackknife_ci(estimate, left_out, level)
                record[f"{_level_name(level)}_low"] = float(np.clip(low, -1, 1))
                record[f"{_level_name(level)}_high"] = float(np.clip(high, -1, 1))
            record.update(ci_method=JACKKNIFE_CI_METHOD, resampled=RESAMPLED_IMAGES)
            records.append(record)
    return pd.DataFrame.from_records(records)


def kind_difference_test(patterns, stimuli, *, reference: str = "RE", first: str = "AI", second: str = "AN",
                         metric: str = "correlation", method: str = "spearman", n_perm: int = 1000,
                         alternative: str = "two-sided", seed=0, image_ids=None,
                         unit: str | None = None) -> pd.DataFrame:
    """Image relabeling test of sim(reference, first) - sim(reference, second).

    Under H0 the ``first`` and ``second`` images of a source are exchangeable (e.g. AI and AN
    images drawn from one distribution of perturbations): each relabeling lets every source's
    two images trade kinds, rebuilds both RDMs from the distances among all 2 n images (computed
    once) and recomputes the difference. Exact (all 2^n relabelings) when 2^n <= ``n_perm``.
    It holds its size (within the binomial band of 5%, simulated in
    ``tests/rsa/test_image_tests.py``) where the percentile image bootstrap rejects at ~1%.
    ``unit`` names the column of the unit sets, as in `kind_similarity`.

    Returns
    -------
    DataFrame
        One row per unit set: ``layer`` or ``roi`` (``unit``), ``difference``, ``p_relabel``, ``n_relabelings``,
        ``relabel_exact``, ``resampled`` (= "images").
    """
    check_resampling(n_perm=n_perm)
    sets, sources, rows = _prepared(patterns, stimuli, reference, (first, second), image_ids, metric)
    n = len(sources)
    relabelings, exact = paired_swap_relabelings(n, n_perm, as_generator(seed))
    upper_rows, upper_cols = np.triu_indices(n, 1)
    records = []
    for name, values in sets.items():
        reference_rdm = rdm(values[rows[reference]], metric)
        pooled = square_rdm(rdm(np.concatenate([values[rows[first]], values[rows[second]]]), metric))
        z_ref = None if method in ("kendall", "kendall_tau_a") else normalize_rows(reference_rdm[None, :], method)

        def difference(index, pooled=pooled, z_ref=z_ref, reference_rdm=reference_rdm):
            one, two = index[:, :n], index[:, n:]
            rdm_one = pooled[one[:, upper_rows], one[:, upper_cols]]
            rdm_two = pooled[two[:, upper_rows], two[:, upper_cols]]
            if z_ref is None:
                return (correlate_rows(reference_rdm, rdm_one, method)
                        - correlate_rows(reference_rdm, rdm_two, method))[:, None]
            return ((normalize_rows(rdm_one, method) @ z_ref[0]) - (normalize_rows(rdm_two, method) @ z_ref[0]))[:, None]

        result = relabeling_test(difference, relabelings, exact=exact, alternative=alternative,
                                 batch_size=int(max(1, 2**22 // max(1, len(upper_rows)))))
        records.append({_unit_column(patterns, unit): name, "difference": float(result.observed[0]), "p_relabel": float(result.p[0]),
                        "n_relabelings": len(relabelings), "relabel_exact": exact, "resampled": RESAMPLED_IMAGES})
    return pd.DataFrame.from_records(records)


def layer_trend_bootstrap(samples: dict, similarity: pd.DataFrame, order: Sequence[str], n_images: int,
                          alternative: str = "two-sided") -> pd.DataFrame:
    """Trend of each pair's similarity over layers, tested with image resamples of all layers.

    Parameters
    ----------
    samples : dict of pair to array (n_boot, n_layers)
        From `kind_image_bootstrap` (``return_samples=True``), columns in ``order``.
    similarity : DataFrame
        `kind_similarity`'s table (``layer`` or ``roi``, ``pair``, ``similarity``).
    order : sequence of str
        The unit sets (layers) of the samples' columns, first to last.
    n_images : int
        Sources resampled (`brainprobe.stats.trend_bootstrap_test`).

    Returns
    -------
    DataFrame
        One row per pair: ``pair``, ``trend_slope`` (least-squares similarity per layer),
        ``trend_slope_se``, ``trend_slope_ci95_low``, ``trend_slope_ci95_high``, ``p_boot_trend``,
        ``n_boot_trend``, ``resampled`` (= "images").
    """
    records = []
    for pair, values in samples.items():
        series = similarity[similarity["pair"] == pair].set_index(_unit_of(similarity))["similarity"]
        result = trend_bootstrap_test(values, series.loc[list(order)].to_numpy(), n_images=n_images,
                                      alternative=alternative)
        result["p_boot_trend"] = result.pop("p")
        result["n_boot_trend"] = result.pop("n_boot")
        result = {("trend_" + k if k.startswith("slope") else k): v for k, v in result.items()}
        records.append({"pair": pair, **result, "resampled": RESAMPLED_IMAGES})
    return pd.DataFrame.from_records(records)
