"""The general design: any image set, each ROI's RDM against each layer's RDM and each model RDM.

`Study` calls these when ``[design] kind = "general"`` (or ``"auto"`` and the stimuli hold no AN
and AI images and ``[stimuli] generate = false``). Steps are plain functions, as in ``_steps``:
inputs in, tables out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sklearn.base import clone
from sklearn.model_selection import KFold

from ..data import Responses
from ..rsa import category_rdm, compare_to_candidates, group_comparison, rdm
from ..stats import accuracy_permutation_test, prediction_accuracy
from ._steps import is_general, may_be_general, selected_columns

__all__ = ["is_general", "may_be_general", "general_rsa", "general_encoding", "general_group", "rdms_by_subject", "candidate_name"]

def candidate_name(network: str, layer: str, several: bool) -> str:
    return f"{network}:{layer}" if several else layer


def _model_rdms(table: pd.DataFrame, config) -> dict[str, np.ndarray]:
    """Model RDMs from the stimulus-table columns named in ``[design] models`` (0 same label, 1 not)."""
    models = {}
    for column in config["design"]["models"]:
        if column not in table:
            continue  # e.g. "category" on images without categories: nothing to model
        labels = table[column].astype(str)
        if labels.nunique() < 2 or labels.nunique() == len(labels):
            continue  # one label, or one per image: the model RDM is constant
        models[f"model:{column}"] = category_rdm(labels)
    return models


def general_rsa(averaged: tuple[np.ndarray, pd.DataFrame], selection: pd.DataFrame, networks: Sequence[Mapping],
                activations: Mapping, subject: str, config, seed) -> dict[str, pd.DataFrame]:
    """One subject: ROI RDMs, their comparison with every layer and model RDM, the best layer per ROI.

    Parameters
    ----------
    averaged : (patterns (n_images, n_vertices), table)
        `image_patterns`'s output.
    selection : DataFrame
        The vertex selection (``selected`` rows give each ROI's columns).
    networks : sequence of dict with ``label`` and ``layers``
    activations : mapping of network label to Activations

    Returns
    -------
    dict
        ``general_rsa`` (one row per roi x candidate), ``general_best`` (one row per roi),
        ``brain_rdms`` (one row per roi x image pair: ``image_a``, ``image_b``, ``dissimilarity``).
    """
    rsa = config["rsa"]
    patterns, table = averaged
    image_ids = table["image_id"].astype(str).tolist()
    brain = {roi: rdm(patterns[:, columns], rsa["metric"]) for roi, columns in selected_columns(selection).items()}
    several = len(networks) > 1
    candidates, layers = {}, []
    for network in networks:
        found = activations[network["label"]]
        position = pd.Series(np.arange(len(found.image_ids)), index=[str(i) for i in found.image_ids])
        rows = position.loc[image_ids].to_numpy()
        for layer in network["layers"]:
            name = candidate_name(network["label"], layer, several)
            candidates[name] = rdm(np.asarray(found[layer])[rows].reshape(len(rows), -1), rsa["metric"])
            layers.append(name)
    candidates.update(_model_rdms(table, config))
    method = "kendall_tau_a" if rsa["method"] == "kendall" else rsa["method"]
    result = compare_to_candidates(brain, candidates, method=method, n_perm=rsa["n_perm"], n_boot=rsa["n_boot"],
                                   layers=layers, seed=seed)
    rows_, cols_ = np.triu_indices(len(image_ids), 1)
    ids = np.asarray(image_ids)
    rdms = pd.concat([pd.DataFrame({"roi": roi, "image_a": ids[rows_], "image_b": ids[cols_], "dissimilarity": values,
                                    "metric": rsa["metric"]}) for roi, values in brain.items()], ignore_index=True)
    return {"general_rsa": result["comparison"].assign(subject=subject),
            "general_best": result["best"].assign(subject=subject),
            "brain_rdms": rdms.assign(subject=subject)}


def rdms_by_subject(brain_rdms: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """The ``brain_rdms`` table back as {subject: {roi: condensed RDM}}, pairs in each subject's order."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for (subject, roi), part in brain_rdms.groupby(["subject", "roi"], sort=False):
        out.setdefault(subject, {})[roi] = part["dissimilarity"].to_numpy(dtype=np.float64)
    return out


def general_group(tables: Mapping[str, pd.DataFrame], layer_order: Sequence[str], config, seed) -> dict:
    """Across subjects: noise ceiling, random effects, best layer with a bootstrap over subjects."""
    comparison = tables.get("general_rsa")
    if comparison is None or comparison["subject"].nunique() < 2:
        return {}
    rdms = tables["brain_rdms"]
    orders = {s: tuple(part["image_a"] + "\0" + part["image_b"]) for s, part in rdms.groupby("subject", sort=False)}
    if len(set(orders.values())) > 1:
        # subjects saw different images (or in another order): one image order for the ceiling
        common = sorted(set.intersection(*(set(v) for v in orders.values())))
        rdms = rdms[(rdms["image_a"] + "\0" + rdms["image_b"]).isin(common)]
        rdms = rdms.assign(key=rdms["image_a"] + "\0" + rdms["image_b"]).sort_values(["subject", "roi", "key"])
    method = "kendall_tau_a" if config["rsa"]["method"] == "kendall" else config["rsa"]["method"]
    result = group_comparison(comparison, rdms_by_subject(rdms), layers=list(layer_order), method=method,
                              n_boot=config["rsa"]["n_boot"], seed=seed)
    return {f"general_{name}": frame for name, frame in result.items()}


def general_encoding(responses: Responses, selection: pd.DataFrame, activations, layers: Sequence[str], config,
                     seed, estimator) -> pd.DataFrame:
    """Cross-validated held-out accuracy of an encoding model per ROI x layer, with a permutation p.

    Each image is predicted by a model fitted on the other folds (``[best_layer] cv``, contiguous
    folds); the accuracy (`prediction_accuracy` of ``[encoding] per``) is tested by relabeling
    the held-out images (`accuracy_permutation_test`, ``[encoding] n_perm``, greater).
    """
    settings = config["encoding"]
    patterns, table = responses.average_repeats()
    ids = table["image_id"].astype(str).tolist()
    position = pd.Series(np.arange(len(activations.image_ids)), index=[str(i) for i in activations.image_ids])
    rows = position.loc[ids].to_numpy()
    columns = selected_columns(selection)
    rng = np.random.default_rng(seed)
    records = []
    cv = config["best_layer"]["cv"]
    for layer in layers:
        X = np.asarray(activations[layer])[rows].reshape(len(rows), -1)
        every = np.concatenate(list(columns.values()))
        predicted_all = _cross_validated(estimator, X, patterns[:, every], cv)
        offset = 0
        for roi, chosen in columns.items():
            predicted = predicted_all[:, offset:offset + len(chosen)]
            measured = patterns[:, chosen]
            offset += len(chosen)
            accuracy = prediction_accuracy(predicted, measured, per=settings["per"])
            p = np.nan
            if settings["n_perm"]:
                _, _, p = accuracy_permutation_test(predicted, measured, per=settings["per"], n_perm=settings["n_perm"],
                                                    seed=rng)
            records.append({"subject": responses.subject, "roi": roi, "layer": layer, "heldout_accuracy": accuracy,
                            "p": p, "accuracy_definition": settings["per"], "cv": min(cv, len(ids)),
                            "n_images": len(ids), "n_vertices": len(chosen), "n_perm": settings["n_perm"],
                            "resampled": "images"})
    return pd.DataFrame(records)


def _cross_validated(estimator, X: np.ndarray, measured: np.ndarray, cv: int) -> np.ndarray:
    """Each image predicted by a clone of ``estimator`` fitted on the other ``cv`` folds (contiguous)."""
    predicted = np.empty_like(measured, dtype=np.float64)
    for train, test in KFold(n_splits=min(cv, len(X))).split(X):
        predicted[test] = clone(estimator).fit(X[train], measured[train]).predict(X[test]).reshape(len(test), -1)
    return predicted
