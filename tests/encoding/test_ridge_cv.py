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
