"""Tuned ridge with more targets than samples keeps its weights in dual form: the same model, a
fraction of the memory and of the file."""

import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV

from brainprobe import InputFileError
from brainprobe.data import Responses
from brainprobe.encoding import (
    EncodingModels,
    RidgeCVEncoder,
    fit_encoding_models,
    heldout_accuracy,
)
from brainprobe.encoding._estimators import stores_dual
from brainprobe.models import Activations


def _wide(n_samples=20, n_features=300, n_targets=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    Y = X[:, :10] @ rng.normal(size=(10, n_targets)) + rng.normal(size=(n_samples, n_targets)) + 2.0
    return X, Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_targets_keep_the_dual_form_with_scikit_learns_weights_and_predictions(dtype):
    X, Y = _wide()
    X = X.astype(dtype)
    model = RidgeCVEncoder().fit(X, Y)
    assert stores_dual(model) and "coef_" not in vars(model)
    assert model.dual_coef_.shape == (20, 50) and model.X_fit_ is X
    centred = X.astype(np.float64) - X.mean(axis=0, dtype=np.float64)
    scale = np.trace(centred @ centred.T) / len(X)
    reference = RidgeCV(alphas=np.asarray(model.alphas) * scale, alpha_per_target=True).fit(X.astype(np.float64), Y)
    np.testing.assert_allclose(model.alpha_ * scale, reference.alpha_)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-9)  # formed on request
    np.testing.assert_allclose(model.intercept_, reference.intercept_, atol=1e-9)
    new = np.random.default_rng(1).normal(size=(7, 300)).astype(dtype)
    np.testing.assert_allclose(model.predict(new), reference.predict(new.astype(np.float64)), atol=1e-9)
    np.testing.assert_allclose(model.predict(new), new @ model.coef_.T + model.intercept_, atol=1e-9)


def test_a_refit_with_few_targets_keeps_only_the_weights():
    X, Y = _wide()
    model = RidgeCVEncoder().fit(X, Y)
    model.fit(X, Y[:, :5])  # fewer targets than samples: the weights are the smaller form
    assert not stores_dual(model) and not {"dual_coef_", "X_fit_", "x_mean_"} & set(vars(model))
    assert model.coef_.shape == (5, 300)
    np.testing.assert_allclose(model.coef_, RidgeCVEncoder().fit(X, Y).coef_[:5], atol=1e-10)


def _study_data(n_images=24, n_units=400, n_vertices=60):
    rng = np.random.default_rng(3)
    ids = [f"im{i}" for i in range(n_images)]
    layers = {"wide": rng.normal(size=(n_images, n_units)).astype(np.float32)}
    signal = layers["wide"][:, :5] @ rng.normal(size=(5, n_vertices))
    betas = np.concatenate([signal + rng.normal(size=signal.shape) for _ in range(2)])
    trials = pd.DataFrame({"image_id": ids * 2, "repeat": [1] * n_images + [2] * n_images})
    responses = Responses(betas, trials)
    responses.add_roi("V1", np.arange(n_vertices) < 35)
    responses.add_roi("LO", np.arange(n_vertices) >= 35)
    return Activations(layers, image_ids=ids), responses


def test_rois_of_a_dual_fit_share_the_features_saved_once_and_load_to_the_same_predictions(tmp_path, monkeypatch):
    activations, responses = _study_data()
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=RidgeCVEncoder())
    v1, lo = models.models[("sub-01", "V1", "wide")], models.models[("sub-01", "LO", "wide")]
    assert stores_dual(v1) and stores_dual(lo) and v1.X_fit_ is lo.X_fit_
    assert v1.dual_coef_.shape == (24, 35) and lo.dual_coef_.shape == (24, 25)
    X = np.asarray(activations["wide"])
    joint = RidgeCVEncoder().fit(X, responses.average_repeats()[0])
    np.testing.assert_allclose(np.hstack([v1.predict(X), lo.predict(X)]), joint.predict(X), atol=1e-10)
    heldout_accuracy(models, activations, responses, cv=4, n_perm=0)
    path = models.save(tmp_path / "models.npz")
    with zipfile.ZipFile(path) as archive:
        assert sum(name.endswith("X_fit_.npy") for name in archive.namelist()) == 1  # written once
    from brainprobe.encoding import _io

    scanned = []
    real_all_finite = _io._all_finite
    monkeypatch.setattr(_io, "_all_finite", lambda values: scanned.append(values.shape) or real_all_finite(values))
    loaded = EncodingModels.load(path)
    assert scanned.count((24, 400)) == 1  # the shared features are checked once, not once per ROI
    for key, model in models.models.items():
        np.testing.assert_array_equal(loaded.models[key].predict(X), model.predict(X))
        np.testing.assert_array_equal(loaded.models[key].coef_, model.coef_)
    assert loaded.models[("sub-01", "V1", "wide")].X_fit_ is loaded.models[("sub-01", "LO", "wide")].X_fit_
    # the weights of both ROIs: 60 x 400 float64, against 24 x 400 float32 features + 24 x 60 duals
    assert path.stat().st_size < 60 * 400 * 8


def _first(arrays: dict, suffix: str) -> str:
    return next(k for k in sorted(arrays) if k.endswith(suffix))


def _cut_columns(arrays):
    for suffix in ("X_fit_", "x_mean_"):
        arrays[_first(arrays, suffix)] = arrays[_first(arrays, suffix)][..., :-1]


def _nan_feature(arrays):
    features = arrays[_first(arrays, "X_fit_")].copy()
    features[3, 5] = np.nan
    arrays[_first(arrays, "X_fit_")] = features


DAMAGES = {
    "dual_rows": (lambda a: a.update({_first(a, "dual_coef_"): a[_first(a, "dual_coef_")][:-1]}),
                  r"field 'dual_coef_': expected shape \(24, 35\)"),
    "feature_columns": (_cut_columns, r"field 'X_fit_': expected 400 columns \(n_features_in_\), found 399"),
    "integer_features": (lambda a: a.update({_first(a, "X_fit_"): a[_first(a, "X_fit_")].astype(np.int64)}),
                         r"field 'X_fit_': expected the \(n_samples, n_features\) float"),
    "nan_feature": (_nan_feature, r"field 'X_fit_': expected finite values"),
    "penalties": (lambda a: a.update({_first(a, "alpha_"): a[_first(a, "alpha_")][:3]}),
                  r"field 'alpha_': expected one penalty per ROI column \(35\), found 3"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_file_whose_dual_arrays_disagree_is_refused_with_the_field(tmp_path, damage):
    activations, responses = _study_data()
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=RidgeCVEncoder())
    assert models.models[("sub-01", "V1", "wide")].alpha_.shape == (35,)  # each ROI its own penalties
    path = models.save(tmp_path / "models.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    change, message = DAMAGES[damage]
    change(arrays)
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    with pytest.raises(InputFileError, match=r"broken\.npz: model \('sub-01', 'V1', 'wide'\): " + message):
        EncodingModels.load(broken)
