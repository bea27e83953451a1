"""Which unit the study's intervals and tests resample, and the group-level tables.

Helpers of `_steps` and `_study` (kept here so their edits stay small):

- `image_rsa`: a similarity table's intervals over images (the default, ``[rsa] ci = "images"``)
  or the paper's vertex / unit subsamples, labelled in a ``resampled`` column; the AI-vs-AN
  image relabeling p; the layer trend tested with image resamples of every layer.
- `general_group_level`: the general design's q-values (each subject's ROI x candidate tests;
  the group's) and random effects of the encoding accuracies over subjects.
- `group_level`: random-effects tests across subjects (>= 3) with leave-one-subject-out noise
  ceilings per ROI, and Benjamini-Hochberg q-values per family of tests in every table with
  p-values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._internal import RESAMPLED_SUBJECTS, RESAMPLED_UNITS, RESAMPLED_VERTICES
from ..rsa import (
    kind_difference_test,
    kind_image_bootstrap,
    kind_image_ci,
    layer_trend_bootstrap,
    rdm,
)
from ..stats import fdr_by_family, noise_ceiling, random_effects_test

__all__ = ["image_rsa", "group_level", "general_group_level", "MIN_GROUP_SUBJECTS", "re_rdms"]

MIN_GROUP_SUBJECTS = 3  # random effects across fewer subjects would have df < 2


def image_rsa(similarity: pd.DataFrame, difference: pd.DataFrame, patterns: Mapping, table: pd.DataFrame, config,
              seed, *, units: str, order: Sequence[str] | None = None) -> dict:
    """Intervals, difference test and trend that generalize over images, per ``[rsa]`` settings.

    Parameters
    ----------
    similarity, difference : DataFrames
        `kind_similarity` and `kind_difference` tables (their unit sets in ``roi`` or ``layer``).
    patterns : mapping of unit set to array (n_images, n_units)
    units : {"vertices", "units"}
        What the paper's subsamples resample here (brain ROIs or network layers).
    order : sequence of str, optional
        Layers in order: adds the image-bootstrap trend (``trend_images`` table).

    Returns
    -------
    dict with ``similarity``, ``difference`` and (with ``order``) ``trend_images``.
    """
    rsa = config["rsa"]
    column = "roi" if units == "vertices" else "layer"
    common = {"metric": rsa["metric"], "method": rsa["method"], "unit": column}
    out = {}
    if rsa["ci"] == "images" and rsa["n_boot"]:
        intervals = kind_image_ci(patterns, table, **common)
        ci_columns = [c for c in similarity if c.startswith("ci") and (c.endswith("_low") or c.endswith("_high"))]
        similarity = similarity.drop(columns=ci_columns + [c for c in ("ci_method",) if c in similarity])
        similarity = similarity.merge(intervals, on=[column, "pair"], how="left")
    elif rsa["n_boot"]:
        similarity = similarity.assign(resampled=RESAMPLED_VERTICES if units == "vertices" else RESAMPLED_UNITS)
    out["similarity"] = similarity
    if rsa["n_perm"]:
        tested = kind_difference_test(patterns, table, n_perm=rsa["n_perm"], seed=seed, alternative=rsa["alternative"],
                                      **common)
        difference = difference.merge(tested[[column, "p_relabel", "n_relabelings", "relabel_exact"]],
                                      on=column, how="left")
    out["difference"] = difference.assign(
        resampled="images (p_boot, CI: bootstrap of sources; p_relabel: AI/AN relabelled within sources)")
    if order is not None and rsa["n_boot"]:
        _, samples = kind_image_bootstrap({u: patterns[u] for u in order}, table, n_boot=rsa["n_boot"], seed=seed,
                                          return_samples=True, **common)
        n_images = int(similarity["n_images"].iloc[0])
        out["trend_images"] = layer_trend_bootstrap(samples, similarity, list(order), n_images)
    return out


def re_rdms(patterns: Mapping, table: pd.DataFrame, metric: str, subject: str) -> pd.DataFrame:
    """Each unit set's RDM of every image kind, condensed, as a long table for the noise ceiling."""
    frames = []
    for name, values in patterns.items():
        for kind in ("RE", "AN", "AI"):
            rows = table.index[table["kind"] == kind]
            part = table.loc[rows].sort_values("source_id", kind="stable")
            frames.append(pd.DataFrame({"subject": subject, "roi": name, "kind": kind,
                                        "entry": np.arange(len(part) * (len(part) - 1) // 2),
                                        "dissimilarity": rdm(values[part.index.to_numpy()], metric)}))
    return pd.concat(frames, ignore_index=True)


def _group_rsa(brain: pd.DataFrame, rdms: pd.DataFrame | None, config) -> pd.DataFrame:
    rows = []
    alternative = "greater"  # similarity above 0: the permutation tests' H1 too
    for (roi, pair), part in brain.groupby(["roi", "pair"], sort=False):
        test = random_effects_test(part["similarity"].to_numpy(), alternative=alternative).iloc[0]
        row = {"roi": roi, "pair": pair, "mean_similarity": test["mean"], "sem": test["sem"], "t": test["t"],
               "df": int(test["df"]), "p": test["p"], "n_subjects": int(test["n_subjects"])}
        if rdms is not None:
            for kind in pair.split("-"):
                ceiling = _ceiling(rdms, roi, kind, config["rsa"]["method"])
                row[f"ceiling_{kind}_lower"], row[f"ceiling_{kind}_upper"] = ceiling
        rows.append(row)
    table = pd.DataFrame(rows).assign(test="one-sample t across subjects, H1: mean similarity > 0",
                                      resampled=RESAMPLED_SUBJECTS)
    return fdr_by_family(table, "p", ["pair"])


def _ceiling(rdms: pd.DataFrame, roi: str, kind: str, method: str) -> tuple[float, float]:
    part = rdms[(rdms["roi"] == roi) & (rdms["kind"] == kind)]
    wide = part.pivot(index="subject", columns="entry", values="dissimilarity")
    if wide.isna().any().any() or len(wide) < 2:
        return np.nan, np.nan
    try:
        ceiling = noise_ceiling(np.array(wide.to_numpy(), dtype=float), method=method)
    except ValueError:
        return np.nan, np.nan
    return ceiling["lower"], ceiling["upper"]


def _group_encoding(encoding: pd.DataFrame) -> pd.DataFrame:
    keys = [k for k in ("network", "roi", "layer", "test_kind") if k in encoding]
    rows = []
    for key, part in encoding.groupby(keys, sort=False):
        test = random_effects_test(part["accuracy"].to_numpy(), alternative="greater").iloc[0]
        rows.append({**dict(zip(keys, key, strict=True)), "mean_accuracy": test["mean"], "sem": test["sem"],
                     "t": test["t"], "df": int(test["df"]), "p": test["p"], "n_subjects": int(test["n_subjects"])})
    table = pd.DataFrame(rows).assign(test="one-sample t across subjects, H1: mean accuracy > 0",
                                      resampled=RESAMPLED_SUBJECTS)
    return fdr_by_family(table, "p", [k for k in ("network", "test_kind") if k in table])


# per table: (p column, the columns that name one family: its tests are the rest, e.g. ROIs x layers)
FDR_FAMILIES = {
    "brain_rsa": ("p_perm", ["subject", "pair"]),
    "brain_difference": ("p_relabel", ["subject"]),
    "network_rsa": ("p_perm", ["network", "pair"]),
    "network_difference": ("p_relabel", ["network"]),
    "encoding": ("p_perm", ["network", "subject", "test_kind"]),
}


def _fdr_tables(tables: dict, families: dict) -> dict:
    """The tables of ``families`` that exist and have their p column, with FDR q per family."""
    out = {}
    for name, (p_column, family) in families.items():
        frame = tables.get(name)
        if frame is not None and p_column in frame:
            out[name] = fdr_by_family(frame, p_column, [c for c in family if c in frame])
    return out


def group_level(tables: dict, config) -> dict:
    """FDR q-values per family in the per-subject and network tables, and the group tables.

    Returns
    -------
    dict of table name to DataFrame
        The tables with q columns added, ``group_rsa`` and ``group_encoding`` with >= 3
        subjects.
    """
    out = _fdr_tables(tables, FDR_FAMILIES)
    brain = tables.get("brain_rsa")
    if brain is not None and brain["subject"].nunique() >= MIN_GROUP_SUBJECTS:
        out["group_rsa"] = _group_rsa(brain, tables.get("brain_rdms"), config)
    encoding = tables.get("encoding")
    if encoding is not None and encoding["subject"].nunique() >= MIN_GROUP_SUBJECTS:
        out["group_encoding"] = _group_encoding(encoding)
    return out


# the general design: per table, (p column, the columns that name one family: ROIs x candidates or layers)
GENERAL_FDR_FAMILIES = {
    "general_rsa": ("p", ["subject"]),
    "general_group": ("p", []),
    "general_encoding": ("p", ["network", "subject"]),
}


def general_group_level(tables: dict) -> dict:
    """The general design's FDR q-values and the encoding accuracies' random effects.

    Returns
    -------
    dict of table name to DataFrame
        ``general_rsa``, ``general_group`` and ``general_encoding`` with ``q_fdr`` and
        ``q_fdr_family`` (Benjamini-Hochberg over every ROI x candidate, or ROI x layer, test of
        one subject, or of the group); ``general_encoding_group`` (one row per ROI x layer: the
        subjects' mean held-out accuracy tested against 0, one-sample t over subjects, with its
        q-values) with >= 2 subjects.
    """
    out = _fdr_tables(tables, GENERAL_FDR_FAMILIES)
    encoding = tables.get("general_encoding")
    if encoding is not None and encoding["subject"].nunique() >= 2:
        keys = [k for k in ("network", "roi", "layer") if k in encoding]
        rows = []
        for key, part in encoding.groupby(keys, sort=False):
            test = random_effects_test(part["heldout_accuracy"].to_numpy(), alternative="greater").iloc[0]
            rows.append({**dict(zip(keys, key, strict=True)), "mean": test["mean"], "sem": test["sem"],
                         "t": test["t"], "df": int(test["df"]), "p": test["p"], "n_subjects": int(test["n_subjects"]),
                         "accuracy_definition": part["accuracy_definition"].iloc[0]})
        table = pd.DataFrame(rows).assign(test="one-sample t across subjects, H1: mean held-out accuracy > 0",
                                          resampled=RESAMPLED_SUBJECTS)
        out["general_encoding_group"] = fdr_by_family(table, "p", [k for k in ("network",) if k in table])
    return out
