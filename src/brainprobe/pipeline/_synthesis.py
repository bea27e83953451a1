"""The ``[synthesis]`` step: images made through a subject's fitted encoding models, with their
predicted responses and validity (`brainprobe.synth.ROIMaximization`, `ControversialImages`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..encoding import EncodingModels, EncodingModule, fit_encoding_models, heldout_accuracy
from ..models import Activations, LayeredModel
from ..stimuli import StimulusSet
from ..synth import ControversialImages, ROIMaximization
from ._cache import read_arrays, write_arrays
from ._steps import make_estimator, selected_columns
from ._tables import read_table, write_table

__all__ = ["synthesize_for_subject", "synthesis_titles"]


def _roi_models(model: LayeredModel, activations: Activations, layers: Sequence[str], responses, selection, config,
                models: EncodingModels | None = None):
    """One EncodingModule per ROI, at the configured layer or the ROI's best held-out layer.

    ``models``: the subject's fitted encoding models (the study's ``encoding_models`` step), whose
    cached held-out predictions `heldout_accuracy` reuses; default: fitted here."""
    settings = config["synthesis"]
    columns = selected_columns(selection)
    rois = [roi for roi in config["rois"]["names"] if roi in columns]
    candidates = [settings["layer"]] if settings["layer"] else list(layers)
    unknown = [layer for layer in candidates if layer not in activations]
    if unknown:
        raise ValueError(f"[synthesis] layer: {unknown} not among the analysed layers {list(activations)}")
    if models is None:
        fitted = fit_encoding_models(activations, responses, rois, candidates, vertices=columns,
                                     estimator=make_estimator(config), progress=False)
    else:  # the same ROIs and layers in the same order: the permutation nulls draw as they would here
        fitted = models.subset(rois=rois, layers=candidates)
    accuracy = heldout_accuracy(fitted, activations, responses, cv=config["best_layer"]["cv"],
                                per=config["encoding"]["per"])
    best = accuracy.sort_values("heldout_accuracy", ascending=False, na_position="last").drop_duplicates("roi")
    modules = {}
    for row in best.itertuples():
        modules[row.roi] = EncodingModule.from_models(model, fitted, row.subject, row.roi, row.layer, name=row.roi,
                                                      accuracy=row.heldout_accuracy, accuracy_null=row.accuracy_null95)
    return {roi: modules[roi] for roi in rois}


def synthesize_for_subject(model: LayeredModel, activations: Activations, layers: Sequence[str], responses,
                           selection: pd.DataFrame, stimuli: StimulusSet, config, seed: int,
                           *, progress: bool | None = None,
                           models: EncodingModels | None = None) -> tuple[dict, torch.Tensor]:
    """``[synthesis] n_images`` per ROI and objective through one subject's encoding models.

    The natural-image null (z units, validity) is `BrainSynthesis`'s stated reference set (256
    random crops of the bundled photographs), not the study's few RE images: a z against a dozen
    images depends on which images they are. A model whose held-out accuracy is not above its
    permutation null is flagged (``trusted`` False, a warning, "untrusted" under its images).
    ``models``: the subject's fitted `EncodingModels` with their held-out predictions (the
    study passes its encoding step's); default: fitted here.

    Returns
    -------
    tables : dict
        ``synthesis``: one row per (synthesized image, model): ``objective``, ``made_for``,
        ``image``, ``model``, ``layer``, ``response``, ``z``, ``trusted``, ``converged``, ``n_iter``;
        ``synthesis_validity``: one row per (run, model), `BrainSynthesis.validity_` plus
        ``objective`` and ``made_for``.
    images : tensor (n_synthesized, 3, H, W)
        Rows in the order of the ``image`` column.
    """
    settings = config["synthesis"]
    modules = _roi_models(model, activations, layers, responses, selection, config, models)
    common = {"lr": settings["lr"], "seed": int(seed) % 2**31}
    target_z = settings["target_z"] or None
    runs = []
    for objective in settings["objectives"]:
        if objective == "controversial":
            first, second = list(modules)[0], list(modules)[-1]
            runs.append((objective, f"{first} vs {second}",
                         ControversialImages(modules, first, second, n_images=settings["n_images"], target_z=target_z,
                                             **common)))
            continue
        for roi in modules:
            runs.append((objective, roi, ROIMaximization(modules, roi, direction=objective, n_images=settings["n_images"],
                                                         target_z=target_z, **common)))
    tables, validity, images, offset = [], [], [], 0
    for objective, made_for, run in runs:
        run.synthesize(settings["max_iter"], progress=progress)
        made = run.table_
        made = made.assign(objective=objective, made_for=made_for, layer=made["model"].map(
            {name: module.layer for name, module in modules.items()}))
        made["image"] += offset
        tables.append(made)
        validity.append(run.validity_.assign(objective=objective, made_for=made_for))
        images.append(run.images)
        offset += len(run.images)
    order = ["objective", "made_for", "group", "image", "model", "layer", "response", "z", "trusted", "converged",
             "n_iter"]
    synthesis = pd.concat(tables, ignore_index=True)[order]
    validity_table = pd.concat(validity, ignore_index=True)
    validity_table = validity_table[["objective", "made_for"] + [c for c in validity_table if c not in ("objective",
                                                                                                       "made_for")]]
    return {"synthesis": synthesis, "synthesis_validity": validity_table}, torch.cat(images)


def synthesis_titles(table: pd.DataFrame) -> list[str]:
    """One caption per synthesized image: what it was made for and the z of every model."""
    titles = []
    for _, rows in table.groupby("image", sort=True):
        head = rows.iloc[0]
        trusted = rows["trusted"] if "trusted" in rows else [True] * len(rows)
        scores = ", ".join(f"{m} {z:+.1f}" + ("" if ok else " (untrusted)")
                           for m, z, ok in zip(rows["model"], rows["z"], trusted, strict=True))
        titles.append(f"{head['objective']} {head['made_for']}\nz: {scores}")
    return titles


def save_synthesis(value, folder) -> None:
    """Cache writer: the tables as CSV and the images as a float32 array."""
    tables, images = value
    for name, frame in tables.items():
        write_table(folder / f"{name}.csv", frame)
    write_arrays(folder / "images.npz", {"images": images.numpy().astype(np.float32)})


def load_synthesis(folder):
    tables = {name: read_table(folder / f"{name}.csv") for name in ("synthesis", "synthesis_validity")}
    return tables, torch.from_numpy(read_arrays(folder / "images.npz")["images"])


def synthesis_figures(images: torch.Tensor, table: pd.DataFrame, config, folder) -> list:
    """The synthesized images with what each was made for and every model's z (one figure)."""
    from .. import plotting

    figure = plotting.image_grid(images, synthesis_titles(table), columns=config["synthesis"]["n_images"], size=2.6,
                                 title="Images made through the encoding models\n(z: predicted response in "
                                       "natural-image SDs)")
    return plotting.save_figure(figure, folder / "fig_synthesis", config["figures"]["formats"],
                                dpi=config["figures"]["dpi"])
