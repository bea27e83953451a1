"""Ridge with one penalty per vertex, chosen by leave-one-out error."""

import numpy as np
from sklearn.linear_model import RidgeCV

from brainprobe.encoding import KernelRidgeEncoder, RidgeCVEncoder
from brainprobe.stats import prediction_accuracy


def test_equals_scikit_learn_ridgecv_alpha_per_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 300))
    Y = X @ (rng.normal(size=(300, 6)) * np.array([0.001, 0.01, 0.1, 1, 1, 0.0])) + rng.normal(size=(80, 6)) + 3
    ours = RidgeCVEncoder().fit(X, Y)
    centred = X - X.mean(axis=0)
    scale = np.trace(centred @ centred.T) / len(X)  # the encoder's penalties are relative to it
    reference = RidgeCV(alphas=np.asarray(ours.alphas) * scale, alpha_per_target=True).fit(X, Y)
    np.testing.assert_allclose(ours.alpha_ * scale, reference.alpha_)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-10)


def test_tuned_ridge_beats_alpha_one_when_the_right_alpha_is_far_from_one():
    rng = np.random.default_rng(1)
    n_train, n_test, n_features = 100, 300, 50
    scales = np.logspace(0, -2, n_features)  # feature variances over four decades
    X = rng.normal(size=(n_train + n_test, n_features)) * scales
    # the signal lives in the weak directions: a penalty near the kernel's mean diagonal (alpha = 1)
    # shrinks it away; the right penalty is orders of magnitude smaller
    weights = rng.normal(size=(n_features, 30)) / scales[:, None] * (np.arange(n_features) >= 25)[:, None]
    signal = X @ weights
    Y = signal + 0.3 * signal.std(axis=0) * rng.normal(size=signal.shape)
    train, test = slice(0, n_train), slice(n_train, None)
    tuned = RidgeCVEncoder().fit(X[train], Y[train])
    fixed = KernelRidgeEncoder(alpha=1.0).fit(X[train], Y[train])
    tuned_r = prediction_accuracy(tuned.predict(X[test]), Y[test], per="vertex")
    fixed_r = prediction_accuracy(fixed.predict(X[test]), Y[test], per="vertex")
    assert np.median(tuned.alpha_) < 1e-2
    assert tuned_r > 0.8 and tuned_r > fixed_r + 0.5


def test_heldout_accuracy_has_a_p_and_shares_folds_with_best_layer():
    import pandas as pd

    from brainprobe.data import Responses
    from brainprobe.encoding import best_layer, fit_encoding_models, heldout_accuracy
    from brainprobe.models import Activations

    rng = np.random.default_rng(3)
    n_images = 30
    ids = [f"im{i}" for i in range(n_images)]
    layers = {"low": rng.normal(size=(n_images, 40)), "high": rng.normal(size=(n_images, 40))}
    signal = layers["low"][:, :5] @ rng.normal(size=(5, 12))
    betas = np.concatenate([signal + 0.5 * rng.normal(size=signal.shape) for _ in range(2)])
    trials = pd.DataFrame({"image_id": ids * 2, "repeat": [1] * n_images + [2] * n_images})
    responses = Responses(betas, trials)
    responses.add_roi("V1", np.ones(12, bool))
    activations = Activations(layers, image_ids=ids)
    models = fit_encoding_models(activations, responses, ["V1"], estimator=RidgeCVEncoder())
    accuracy = heldout_accuracy(models, activations, responses, n_perm=200, seed=0).set_index("layer")
    assert accuracy.loc["low", "accuracy_p"] < 0.01 and accuracy.loc["high", "accuracy_p"] > 0.01
    fitted = dict(models.heldout)
    best_layer(models, activations, responses, on="RE")  # the same folds: no refit
    assert models.heldout.keys() == fitted.keys()
    assert all(models.heldout[k] is fitted[k] for k in fitted)


def _sklearn_reference(ours, X, Y):
    centred = X - X.mean(axis=0)
    scale = np.trace(centred @ centred.T) / len(X)  # the encoder's penalties are relative to it
    return scale, RidgeCV(alphas=np.asarray(ours.alphas) * scale, alpha_per_target=True).fit(X, Y)


def test_more_images_than_units_equals_scikit_learn():
    # the covariance route (n_samples > n_features), including units that repeat another
    # (a rank-deficient layer): same penalties, weights and intercepts as scikit-learn
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 40))
    X = np.column_stack([X, X[:, :5]])
    Y = X[:, :10] @ rng.normal(size=(10, 7)) * np.logspace(-2, 1, 7) + rng.normal(size=(400, 7)) - 2
    ours = RidgeCVEncoder().fit(X, Y)
    scale, reference = _sklearn_reference(ours, X, Y)
    np.testing.assert_allclose(ours.alpha_ * scale, reference.alpha_)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-10)
    np.testing.assert_allclose(ours.predict(X), reference.predict(X), atol=1e-9)


def test_estimators_by_their_study_file_names():
    import pandas as pd
    import pytest

    from brainprobe.data import Responses
    from brainprobe.encoding import ROMP, fit_encoding_models
    from brainprobe.models import Activations

    rng = np.random.default_rng(6)
    ids = [f"im{i}" for i in range(20)]
    activations = Activations({"fc": rng.normal(size=(20, 15))}, image_ids=ids)
    responses = Responses(rng.normal(size=(20, 4)), pd.DataFrame({"image_id": ids, "repeat": 1}))
    responses.add_roi("V1", np.ones(4, bool))
    by_name = fit_encoding_models(activations, responses, ["V1"], estimator="ridge", progress=False)
    by_object = fit_encoding_models(activations, responses, ["V1"], estimator=RidgeCVEncoder(), progress=False)
    [(key, model)] = by_name.models.items()
    assert isinstance(model, RidgeCVEncoder)
    np.testing.assert_array_equal(model.coef_, by_object.models[key].coef_)
    assert isinstance(next(iter(fit_encoding_models(activations, responses, ["V1"], estimator="romp",
                                                    progress=False).models.values())), ROMP)
    with pytest.raises(ValueError, match=r"estimator: expected one of \['omp', 'ridge', 'romp'\]"):
        fit_encoding_models(activations, responses, ["V1"], estimator="lasso", progress=False)


def test_float32_features_in_blocks_of_columns_fit_as_float64_at_once(monkeypatch):
    # a wide float32 layer is centred and multiplied a block of columns at a time, never copied
    # whole to float64: the same fit as the float64 features in one block
    from brainprobe.encoding import _estimators

    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 500)).astype(np.float32)
    Y = X[:, :20].astype(np.float64) @ rng.normal(size=(20, 5)) + rng.normal(size=(60, 5))
    whole = RidgeCVEncoder().fit(X.astype(np.float64), Y)
    monkeypatch.setattr(_estimators, "_BLOCK_BYTES", 8 * 60 * 64)  # blocks of 64 columns
    blocked = RidgeCVEncoder().fit(X, Y)
    np.testing.assert_array_equal(blocked.alpha_, whole.alpha_)
    np.testing.assert_allclose(blocked.coef_, whole.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blocked.intercept_, whole.intercept_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(blocked.predict(X), whole.predict(X.astype(np.float64)), rtol=1e-9, atol=1e-10)


def test_cross_val_predict_from_one_gram_equals_refitting_each_fold():
    """Every fold's kernel read from one Gram matrix (no copy of X) predicts what a refit on the
    fold's rows does, with and without an intercept, float32 or float64, and on the covariance
    route (more images than units), where each fold is refitted."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(3)
    for n, p, dtype, intercept in [(90, 400, np.float32, True), (90, 400, np.float64, False), (150, 40, np.float64, True)]:
        X = (rng.normal(size=(n, p)) + 5.0).astype(dtype)  # a large mean, as ReLU activations have
        Y = X[:, :4] @ rng.normal(size=(4, 5)) + 2.0 * rng.normal(size=(n, 5)) + 7.0
        encoder = RidgeCVEncoder(fit_intercept=intercept)
        folds = list(KFold(5).split(X))
        refitted = np.empty_like(Y)
        for train, test in folds:
            refitted[test] = clone(encoder).fit(X[train], Y[train]).predict(X[test])
        np.testing.assert_allclose(encoder.cross_val_predict(X, Y, folds), refitted, rtol=1e-9, atol=1e-9)


def test_the_torch_path_used_on_cuda_gives_the_numpy_path_numbers(monkeypatch):
    """On CUDA the ridge runs in torch; here that same code runs in torch on the CPU (no GPU on the
    test machine) and must match the NumPy path: fit, penalties and cross-validated folds."""
    import torch
    from sklearn.model_selection import KFold

    from brainprobe.encoding import _estimators

    rng = np.random.default_rng(8)
    wide = (rng.normal(size=(70, 260)) + 1).astype(np.float32)
    tall = rng.normal(size=(90, 30))
    expected = {}
    for name, X in (("wide", wide), ("tall", tall)):
        Y = X[:, :3] @ rng.normal(size=(3, 6)) + rng.normal(size=(len(X), 6))
        folds = list(KFold(5).split(X))
        expected[name] = (X, Y, folds, RidgeCVEncoder().fit(X, Y), RidgeCVEncoder().cross_val_predict(X, Y, folds))
    real_init = _estimators._Arrays.__init__

    def on_torch(self, device=None):
        real_init(self, "cpu")
        self.on_torch = True

    monkeypatch.setattr(_estimators._Arrays, "__init__", on_torch)
    for X, Y, folds, numpy_fit, numpy_folds in expected.values():
        torch_fit = RidgeCVEncoder().fit(X, Y)
        assert isinstance(torch_fit.coef_, np.ndarray) and not torch.is_tensor(torch_fit.alpha_)
        np.testing.assert_array_equal(torch_fit.alpha_, numpy_fit.alpha_)
        np.testing.assert_allclose(torch_fit.coef_, numpy_fit.coef_, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(RidgeCVEncoder().cross_val_predict(X, Y, folds), numpy_folds, rtol=1e-9, atol=1e-11)
