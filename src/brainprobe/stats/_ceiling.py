"""Noise ceilings and group (random-effects) inference for RSA and encoding results.

- `noise_ceiling`: the leave-one-subject-out ceiling of rsatoolbox
  (``rsatoolbox.inference.boot_noise_ceiling``): the upper bound is the mean correlation of each
  subject's data with the pooled data of all subjects (the pooled data being the best a model
  can be under the comparison method), the lower bound the same with the pooled data of the
  other subjects only. For RDMs (condensed, one row per subject) or any per-subject response
  vector aligned across subjects (e.g. an ROI's mean response to each image).
- `split_half_ceiling`: within one subject, the correlation of two halves of the data,
  Spearman-Brown corrected to the full data's reliability; its square root bounds the
  correlation any model can reach with the full data.
- `encoding_noise_ceiling`: the split-half ceiling of an encoding accuracy
  (`prediction_accuracy`), from single-repeat response patterns.
- `random_effects_test`: subjects as the random effect: one-sample t-test or sign-flip
  permutation test of subject-level scores.
- `layer_sweep`: per-layer group scores with random-effects tests, and a bootstrap over
  subjects of which layer is best.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

from ._accuracy import prediction_accuracy
from ._correlation import _check_method, correlate_rows, normalize_rows, rank_rows
from ._resampling import ALTERNATIVES, as_generator, bootstrap_indices, p_from_null, percentile_ci

__all__ = ["noise_ceiling", "split_half_ceiling", "encoding_noise_ceiling", "spearman_brown", "random_effects_test",
           "sign_flips", "LayerSweep", "layer_sweep"]


def _pooling_rows(data: np.ndarray, method: str) -> np.ndarray:
    """Rows transformed so that their mean is the best pooled vector under ``method`` (as
    rsatoolbox's ``pool_rdm``: z-scores for Pearson, ranks for Spearman and tau-a, unit RMS for cosine)."""
    if method in ("spearman", "kendall_tau_a"):
        return rank_rows(data)  # raw ranks: their sums stay exact, so tied pooled ranks stay tied
    return normalize_rows(data, method)


def noise_ceiling(data, *, method: str = "spearman") -> dict:
    """Leave-one-subject-out noise ceiling (lower and upper bound), as rsatoolbox defines it.

    Parameters
    ----------
    data : array (n_subjects, n_items)
        One row per subject: a condensed RDM (n_items = n (n - 1) / 2 pairs) or a response
        vector over the same items in every subject.
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}
        The comparison a model's score uses.

    Returns
    -------
    dict
        ``lower``, ``upper`` (means over subjects), ``lower_per_subject``,
        ``upper_per_subject`` (arrays (n_subjects,)), ``n_subjects``, ``method``. A true model's
        mean score over subjects is expected between the two bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import noise_ceiling
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=190)                      # a 20-image RDM
    >>> subjects = truth + rng.normal(size=(8, 190))     # 8 noisy subjects
    >>> c = noise_ceiling(subjects, method="pearson")
    >>> bool(c["lower"] < np.mean([np.corrcoef(truth, s)[0, 1] for s in subjects]) < c["upper"])
    True
    """
    method = _check_method(method)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or len(data) < 2:
        raise ValueError(f"data: expected (n_subjects >= 2, n_items), found {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("data: contains NaN or infinite values")
    constant = np.flatnonzero(data.std(axis=1) == 0)
    if len(constant):
        raise ValueError(f"data: subjects (rows) {constant.tolist()} are constant; their correlation is undefined")
    rows = _pooling_rows(data, method)
    total = rows.sum(axis=0)
    pooled_all = total / len(rows)
    pooled_others = (total[None, :] - rows) / (len(rows) - 1)
    upper = correlate_rows(pooled_all[None, :], data, method)
    lower = correlate_rows(pooled_others, data, method)
    return {"lower": float(lower.mean()), "upper": float(upper.mean()), "lower_per_subject": lower,
            "upper_per_subject": upper, "n_subjects": len(data), "method": method}


def spearman_brown(r, factor: float = 2.0):
    """Reliability of data ``factor`` times as long: factor r / (1 + (factor - 1) r)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)


def split_half_ceiling(first_half, second_half, *, method: str = "spearman") -> dict:
    """Split-half reliability of one subject's data and the ceiling it implies.

    Parameters
    ----------
    first_half, second_half : array (n_items,) or (n_sets, n_items)
        The same quantity from two independent halves of the data (e.g. RDMs of odd and even
        runs), per set (e.g. ROI).
    method : {"spearman", "pearson", "cosine", "kendall_tau_a"}

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import split_half_ceiling
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=300)                     # a 25-image RDM
    >>> odd, even = truth + rng.normal(size=(2, 300))    # two halves of the runs
    >>> round(split_half_ceiling(odd, even, method="pearson")["ceiling"], 1)
    0.9

    Returns
    -------
    dict
        ``half_reliability`` (the halves' correlation), ``reliability`` (Spearman-Brown
        corrected to the full data) and ``ceiling`` = sqrt(reliability): the expected
        correlation of the noise-free truth with the full data, which no model exceeds in
        expectation. Arrays (n_sets,) or floats.
    """
    method = _check_method(method)
    a, b = np.asarray(first_half, dtype=np.float64), np.asarray(second_half, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"first_half and second_half: expected equal shapes, found {a.shape} and {b.shape}")
    half = correlate_rows(a, b, method)
    reliability = spearman_brown(half)
    ceiling = np.sqrt(np.clip(reliability, 0.0, None))
    if np.ndim(half) == 0:
        half, reliability, ceiling = float(half), float(reliability), float(ceiling)
    return {"half_reliability": half, "reliability": reliability, "ceiling": ceiling, "method": method}


def _half_splits(n_repeats: int, max_splits: int, seed=0) -> list[np.ndarray]:
    """Splits of the repeats into two halves (each split once, not its mirror): all of them when
    there are at most ``max_splits``, else ``max_splits`` drawn at random (the first ones in
    lexicographic order would all keep repeats 0, 1, 2 together, and with them any run effect)."""
    if n_repeats < 2:
        raise ValueError(f"a split-half ceiling needs at least 2 repeats, found {n_repeats}")
    splits = [np.asarray(first) for first in itertools.combinations(range(n_repeats), n_repeats // 2)
              if 0 in first or n_repeats % 2]
    if len(splits) <= max_splits:
        return splits
    chosen = as_generator(seed).choice(len(splits), size=max_splits, replace=False)
    return [splits[i] for i in sorted(chosen)]


def encoding_noise_ceiling(repeats, *, per: str = "centered", max_splits: int = 20, seed=0) -> dict:
    """Split-half ceiling of an encoding model's accuracy.

    Each split averages half of the repeats into one pattern and the other half into another;
    their accuracy (`prediction_accuracy` of ``per``, as if one half predicted the other) is
    the split-half reliability, Spearman-Brown corrected to all repeats; the square root of
    that is the accuracy the noise-free responses would reach against the mean over all
    repeats: the ceiling of any model's accuracy. Averaged over up to ``max_splits`` splits.

    Parameters
    ----------
    repeats : array (n_repeats, n_images, n_vertices)
        Single-repeat responses.
    per : {"centered", "pattern", "vertex"}
        The accuracy definition the models are scored with.
    max_splits : int
        Splits averaged: all of them when there are this many or fewer, else a random sample.
    seed : int, Generator or None
        Draws the sample of splits.

    Returns
    -------
    dict
        ``half_reliability``, ``reliability``, ``ceiling``, ``n_splits``, ``accuracy_definition``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import encoding_noise_ceiling
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(50, 40))                         # 50 images x 40 vertices
    >>> repeats = signal + rng.normal(size=(2, 50, 40))            # two presentations
    >>> round(encoding_noise_ceiling(repeats)["ceiling"], 1)
    0.8
    """
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim != 3:
        raise ValueError(f"repeats: expected (n_repeats, n_images, n_vertices), found {repeats.shape}")
    values = []
    for first in _half_splits(len(repeats), max_splits, seed):
        second = np.setdiff1d(np.arange(len(repeats)), first)
        values.append(prediction_accuracy(repeats[first].mean(0), repeats[second].mean(0), per=per))
    half = float(np.mean(values))
    # halves of k1 and k2 repeats (unequal when n is odd): their geometric mean length is the
    # "half" that Spearman-Brown lengthens to all n repeats
    k1 = len(repeats) // 2
    reliability = float(spearman_brown(half, len(repeats) / np.sqrt(k1 * (len(repeats) - k1))))
    return {"half_reliability": half, "reliability": reliability, "ceiling": float(np.sqrt(max(reliability, 0.0))),
            "n_splits": len(values), "accuracy_definition": per}


def sign_flips(n_subjects: int, n_perm: int, seed=None) -> tuple[np.ndarray, bool]:
    """Sign patterns (n_used, n_subjects) of +-1: all 2^n when 2^n <= n_perm (the identity
    included: exact p-values), else ``n_perm`` random ones."""
    if n_subjects < 1 or n_perm < 1:
        raise ValueError(f"n_subjects and n_perm: expected >= 1, found {n_subjects}, {n_perm}")
    if n_subjects <= 20 and 2**n_subjects <= n_perm:
        codes = np.arange(2**n_subjects)[:, None] >> np.arange(n_subjects)[None, :] & 1
        return 1.0 - 2.0 * codes, True
    return as_generator(seed).choice([-1.0, 1.0], size=(n_perm, n_subjects)), False


def random_effects_test(scores, *, null_value: float = 0.0, method: str = "t", n_perm: int = 10000,
                        alternative: str = "greater", seed=None) -> pd.DataFrame:
    """Is the subjects' mean score different from ``null_value``? Subjects are the random effect.

    Parameters
    ----------
    scores : array (n_subjects,) or (n_subjects, n_tests)
        One score per subject (and test: ROI, layer, ...), e.g. RDM correlations or encoding
        accuracies.
    null_value : float
    method : {"t", "sign_flip"}
        ``"t"``: one-sample t-test (scipy's ``ttest_1samp``). ``"sign_flip"``: permutation test
        of the mean, flipping the sign of each subject's deviation from ``null_value`` (valid
        for any distribution symmetric under H0); exact when 2^n_subjects <= n_perm.
    n_perm : int
    alternative : {"greater", "less", "two-sided"}
    seed : int, Generator or None

    Returns
    -------
    DataFrame
        One row per test: ``mean``, ``sem``, ``t``, ``df``, ``p``, ``method``, ``exact``,
        ``n_subjects``.

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import random_effects_test
    >>> scores = np.array([0.12, 0.08, 0.15, 0.02, 0.10, 0.09])
    >>> float(random_effects_test(scores, method="sign_flip")["p"].iloc[0])  # exact: 1 / 64
    0.015625
    """
    if method not in ("t", "sign_flip"):
        raise ValueError(f"method: expected 't' or 'sign_flip', found {method!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {ALTERNATIVES}, found {alternative!r}")
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    if scores.ndim != 2 or len(scores) < 2:
        raise ValueError(f"scores: expected (n_subjects >= 2,) or (n_subjects, n_tests), found {np.shape(scores)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores: contain NaN or infinite values")
    n = len(scores)
    deviations = scores - null_value
    mean = scores.mean(axis=0)
    sem = scores.std(axis=0, ddof=1) / np.sqrt(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = deviations.mean(axis=0) / sem
    exact = False
    if method == "t":
        p = _scipy_stats.ttest_1samp(scores, null_value, axis=0, alternative=alternative).pvalue
    else:
        flips, exact = sign_flips(n, n_perm, seed)
        observed = deviations.mean(axis=0)
        chunk = max(1, 2**22 // len(flips))  # bounds the (tests x flips) null in memory
        p = np.concatenate([p_from_null(observed[start:start + chunk], (flips @ deviations[:, start:start + chunk] / n).T,
                                        alternative, exact=exact) for start in range(0, len(observed), chunk)])
    return pd.DataFrame({"mean": mean, "sem": sem, "t": t, "df": n - 1, "p": np.asarray(p, dtype=np.float64),
                         "method": method, "exact": exact, "n_subjects": n})


@dataclass
class LayerSweep:
    """Group scores over layers and which layer is best, with a bootstrap over subjects.

    Attributes
    ----------
    table : DataFrame
        One row per layer: ``layer``, ``mean``, ``sem``, ``ci_low``, ``ci_high`` (bootstrap
        over subjects), the random-effects ``t``, ``p`` against ``null_value``, and
        ``best_frequency`` (share of bootstrap samples in which the layer is best).
    best_layer : str
        The layer with the highest mean score.
    best_layer_ci : (str, str)
        Percentile interval of the best layer's position along the layer order over the
        bootstrap samples.
    n_boot : int
    level : float
    """

    table: pd.DataFrame
    best_layer: str
    best_layer_ci: tuple
    n_boot: int
    level: float


def layer_sweep(scores, layers: Sequence[str], *, n_boot: int = 1000, level: float = 0.95, test: str = "t",
                null_value: float = 0.0, n_perm: int = 10000, alternative: str = "greater", seed=None) -> LayerSweep:
    """Scores of every layer across subjects, with a bootstrap CI on the best layer.

    Parameters
    ----------
    scores : array (n_subjects, n_layers)
        One score per subject and layer (RDM correlation, encoding accuracy, ...).
    layers : sequence of str
        Layer names, shallow to deep (the order the best layer's interval is taken along).
    n_boot : int
        Bootstrap resamples of subjects (with replacement).
    level : float
    test : {"t", "sign_flip"}
        Random-effects test of each layer (`random_effects_test`).
    null_value, n_perm, alternative, seed
        As in `random_effects_test`; ``seed`` also drives the bootstrap.

    Returns
    -------
    LayerSweep

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.stats import layer_sweep
    >>> rng = np.random.default_rng(0)
    >>> scores = np.array([0.1, 0.3, 0.1]) + 0.05 * rng.normal(size=(10, 3))  # 10 subjects, 3 layers
    >>> sweep = layer_sweep(scores, ["conv1", "conv3", "fc7"], n_boot=200, seed=0)
    >>> sweep.best_layer, sweep.best_layer_ci
    ('conv3', ('conv3', 'conv3'))
    """
    scores = np.asarray(scores, dtype=np.float64)
    layers = list(layers)
    if scores.ndim != 2 or scores.shape[1] != len(layers) or len(scores) < 2:
        raise ValueError(f"scores: expected (n_subjects >= 2, {len(layers)} layers), found {scores.shape}")
    if n_boot < 1:
        raise ValueError(f"n_boot: expected >= 1, found {n_boot}")
    rng = as_generator(seed)
    tests = random_effects_test(scores, null_value=null_value, method=test, n_perm=n_perm, alternative=alternative,
                                seed=rng)
    index = bootstrap_indices(len(scores), n_boot, rng)
    means = scores[index].mean(axis=1)  # (n_boot, n_layers)
    low, high = percentile_ci(means, level)
    best = means.argmax(axis=1)
    tail = (1 - level) / 2 * 100
    position_low = int(np.percentile(best, tail, method="lower"))
    position_high = int(np.percentile(best, 100 - tail, method="higher"))
    table = pd.DataFrame({"layer": layers, "mean": scores.mean(axis=0), "sem": tests["sem"].to_numpy(),
                          "ci_low": low, "ci_high": high, "t": tests["t"].to_numpy(), "p": tests["p"].to_numpy(),
                          "best_frequency": np.bincount(best, minlength=len(layers)) / n_boot})
    return LayerSweep(table=table, best_layer=layers[int(scores.mean(axis=0).argmax())],
                      best_layer_ci=(layers[position_low], layers[position_high]), n_boot=n_boot, level=level)
