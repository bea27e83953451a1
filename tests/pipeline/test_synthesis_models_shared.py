"""The synthesis step reads the encoding step's fitted models and held-out folds (issue 23, item 5)."""

import collections
import copy
import hashlib
import json

import numpy as np
import pytest

from brainprobe.data import Responses
from brainprobe.encoding import ROMP, EncodingModels
from brainprobe.models import Activations
from brainprobe.pipeline import Study, _synthesis, validate


def _cached(output, step: str, label: str, name: str):
    """The one file ``name`` of the cache folder of ``step`` for ``label``."""
    found = [folder / name for folder in (output / ".cache" / step).iterdir()
             if (folder / "complete.json").is_file() and json.loads((folder / "complete.json").read_text())["label"] == label]
    assert len(found) == 1, (step, label, found)
    return found[0]


@pytest.mark.slow
def test_each_model_and_fold_is_fitted_once_across_encoding_and_synthesis(tiny_values, monkeypatch):
    fits = collections.Counter()
    real_fit = ROMP.fit

    def fingerprinted(self, X, y):  # what was fitted: the same (X, y) twice is a refit
        fits[hashlib.sha256(np.ascontiguousarray(X).tobytes() + np.ascontiguousarray(y).tobytes()).hexdigest()] += 1
        return real_fit(self, X, y)

    monkeypatch.setattr(ROMP, "fit", fingerprinted)
    values = copy.deepcopy(tiny_values)
    values["synthesis"] = {"enabled": True, "n_images": 1, "objectives": ["drive"], "max_iter": 2}
    values["searchlight"] = {"enabled": False}
    values["best_layer"]["on"] = ["RE", "AN"]  # best_layer reads the held-out folds too
    study = Study(validate(values), progress=False, n_jobs=1)  # one process: the patch sees every fit
    result = study.run()
    n_layers, n_subjects, n_folds = 4, 2, 5
    # one batched fit per (subject, layer), and one per fold for all its ROIs (every selected
    # vertex a target, as the full fit): each (subject, roi, layer)'s folds are read from it
    assert sum(fits.values()) == n_subjects * n_layers * (1 + n_folds)
    assert max(fits.values()) == 1
    log = result.log.set_index(["step", "label"])["status"]
    assert list(log.loc[("encoding_models", "sub-01")]) == ["computed", "cached"]  # encoding, then synthesis
    assert result.tables["synthesis_validity"]["heldout_accuracy"].notna().all()

    # the modules equal those of the synthesis step's own fit (what it did before the fits were shared)
    output = result.output
    models = EncodingModels.load(_cached(output, "encoding_models", "sub-01", "models.npz"))
    assert {k[:4] for k in models.heldout} == {("sub-01", r, layer, 5) for r in ("V1", "LO") for layer in models.layers}
    responses = Responses.load(_cached(output, "responses", "sub-01", "responses.npz"))
    activations = Activations.load(next((output / ".cache" / "activations").glob("*/activations.npz")))
    selection = result.tables["selection"].query("subject == 'sub-01'")
    network = study._model(study.config.networks[0])
    shared = _synthesis._roi_models(network, activations, activations.layers, responses, selection, study.config,
                                    models)
    fitted = sum(fits.values())
    own = _synthesis._roi_models(network, activations, activations.layers, responses, selection, study.config)
    assert sum(fits.values()) > fitted  # that one refitted everything
    assert list(shared) == list(own) == ["V1", "LO"]
    for roi in own:
        a, b = shared[roi], own[roi]
        assert (a.layer, a.name, a.accuracy, a.accuracy_null) == (b.layer, b.name, b.accuracy, b.accuracy_null)
        for name in ("columns", "weight", "bias"):
            assert np.array_equal(getattr(a, name).numpy(), getattr(b, name).numpy()), (roi, name)
