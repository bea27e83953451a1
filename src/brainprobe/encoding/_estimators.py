"""Encoding estimators with the scikit-learn contract: ROMP, and OMP / ridge baselines."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin, clone
from sklearn.linear_model import OrthogonalMatchingPursuit
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted, validate_data

from .._device import resolve_device
from ._kernels import active_kernel_store, features_digest
from ._romp import romp_batched

__all__ = ["ROMP", "OMPEncoder", "KernelRidgeEncoder", "RidgeCVEncoder", "DEFAULT_CV_GRID", "DEFAULT_RIDGE_ALPHAS"]

DEFAULT_CV_GRID = (1, 2, 3, 5, 8, 12)


def _columnwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


class _LinearEncoder(MultiOutputMixin, RegressorMixin, BaseEstimator):
    """What the encoders share: input checks and prediction from ``coef_`` (n_targets, n_features)
    and ``intercept_`` (n_targets,), dense or sparse."""

    _min_samples = 1

    def _validated_fit_data(self, X, y, dtype=np.float64):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype)
        if len(X) < self._min_samples:
            raise ValueError(f"{type(self).__name__} needs at least {self._min_samples} samples, got n_samples = {len(X)}")
        self._single_output = y.ndim == 1
        return X, y.reshape(len(y), -1)

    def predict(self, X):
        """Predicted responses: array (n_samples,) or (n_samples, n_targets)."""
        check_is_fitted(self, "intercept_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        predicted = self._linear_predict(X)
        return predicted[:, 0] if self._single_output else predicted

    def _linear_predict(self, X) -> np.ndarray:
        """(n_samples, n_targets) predictions for validated features ``X``."""
        if stores_dual(self):  # X (X_fit - x_mean)^T a: the weights are never formed
            return _centred_products(X, self.X_fit_, self.x_mean_) @ self.dual_coef_ + self.intercept_
        if sp.issparse(self.coef_):  # a few atoms per target: the product touches only their columns
            predicted = np.asarray(self.coef_ @ X.T).T + self.intercept_
        else:  # float32 activations are taken in float64 a block of columns at a time, never whole
            predicted = np.tile(np.asarray(self.intercept_, dtype=np.float64), (len(X), 1))
            for columns, block in _device_blocks(X, np.zeros(X.shape[1]), _NUMPY):
                predicted += block @ np.asarray(self.coef_[:, columns]).T
        return predicted


class ROMP(_LinearEncoder):
    """Regularized orthogonal matching pursuit, fitted for every target at once.

    The sparse encoding model of paper 001: each vertex's responses to the training images
    are a sparse linear combination of a layer's units. See ``brainprobe.encoding._romp`` for the
    algorithm and how it differs from the published MATLAB code.

    Parameters
    ----------
    n_nonzero : int or "cv"
        The sparsity level s: at most s iterations, at most 2s atoms per target. ``"cv"`` picks s
        from ``cv_grid`` by ``cv``-fold cross-validation on the training samples only (the mean
        over targets of the held-out Pearson r).
    fit_intercept : bool
        Centre X and y on the training samples.
    normalize : bool
        Scale columns to unit norm for atom selection (coefficients stay in original units).
    max_atoms : int, optional
        Support limit (default 2 s); never more than n_samples - 2.
    tol : float
        Relative residual norm at which a target stops.
    cv : int
        Folds for ``n_nonzero="cv"``.
    cv_grid : sequence of int, optional
        Candidate s values for ``n_nonzero="cv"`` (default 1, 2, 3, 5, 8, 12).
    device : str, optional
        Default CUDA when available.
    chunk_size : int, optional
        Targets per chunk (default: keep the correlation matrix near 256 MB).

    Attributes
    ----------
    coef_ : scipy.sparse.csr_matrix (n_targets, n_features)
    intercept_ : array (n_targets,)
    support_ : list of int arrays
        Each target's atoms in order of selection.
    n_iter_ : int array (n_targets,)
    stop_reason_ : array of str (n_targets,)
        ``n_iter``, ``max_atoms``, ``n_samples``, ``residual`` or ``no_correlation``.
    n_nonzero_ : int
        The s used (chosen by cross-validation when ``n_nonzero="cv"``).
    cv_scores_ : dict of int to float
        Mean held-out r per candidate s (``n_nonzero="cv"`` only).

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.encoding import ROMP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 500))
    >>> y = X[:, [3, 70]] @ [1.5, -2.0]
    >>> sorted(ROMP(n_nonzero=2).fit(X, y).support_[0][:2].tolist())
    [3, 70]
    """

    _min_samples = 3  # the support stays below n_samples - 1

    def __init__(self, n_nonzero=5, *, fit_intercept=True, normalize=True, max_atoms=None, tol=1e-10,
                 cv=5, cv_grid=None, device=None, chunk_size=None):
        self.n_nonzero = n_nonzero
        self.fit_intercept = fit_intercept
        self.normalize = normalize
        self.max_atoms = max_atoms
        self.tol = tol
        self.cv = cv
        self.cv_grid = cv_grid
        self.device = device
        self.chunk_size = chunk_size

    def _fit_path(self, X, Y, s):
        return romp_batched(X, Y, s, fit_intercept=self.fit_intercept, normalize=self.normalize,
                            max_atoms=self.max_atoms, tol=self.tol, device=self.device, chunk_size=self.chunk_size)

    def _choose_sparsity(self, X, Y) -> int:
        grid = [s for s in (self.cv_grid or DEFAULT_CV_GRID) if s >= 1]
        folds = KFold(n_splits=min(self.cv, len(X))).split(X)
        folds = list(folds)
        scores = {}
        for s in grid:
            predicted = np.empty_like(Y, dtype=float)
            for train, test in folds:
                fit = self._fit_path(X[train], Y[train], s)
                predicted[test] = np.asarray(X[test] @ fit.coef.T) + fit.intercept
            scores[s] = float(np.nanmean(_columnwise_r(predicted, Y)))
        self.cv_scores_ = scores
        return max(scores, key=lambda s: (scores[s], -s))

    def fit(self, X, y):
        """Fit one sparse model per column of ``y``.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        X, Y = self._validated_fit_data(X, y)
        if self.n_nonzero == "cv":
            self.n_nonzero_ = self._choose_sparsity(X, Y)
        elif isinstance(self.n_nonzero, (int, np.integer)) and self.n_nonzero >= 1:
            self.n_nonzero_ = int(self.n_nonzero)
        else:
            raise ValueError(f"n_nonzero: expected a positive integer or 'cv', found {self.n_nonzero!r}")
        fit = self._fit_path(X, Y, self.n_nonzero_)
        self.coef_ = fit.coef
        self.intercept_ = fit.intercept
        self.support_ = fit.support
        self.n_iter_ = fit.n_iter
        self.stop_reason_ = fit.stop_reason
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class OMPEncoder(_LinearEncoder):
    """scikit-learn's orthogonal matching pursuit behind the same interface (a baseline).

    Parameters
    ----------
    n_nonzero : int
        Atoms per target (OMP adds one per iteration).
    fit_intercept : bool
    """

    _min_samples = 3

    def __init__(self, n_nonzero=5, *, fit_intercept=True):
        self.n_nonzero = n_nonzero
        self.fit_intercept = fit_intercept

    def fit(self, X, y):
        X, Y = self._validated_fit_data(X, y)
        n_atoms = int(min(self.n_nonzero, len(X) - 2, X.shape[1]))
        model = OrthogonalMatchingPursuit(n_nonzero_coefs=n_atoms, fit_intercept=self.fit_intercept).fit(X, Y)
        coef = np.atleast_2d(model.coef_)
        self.coef_ = sp.csr_matrix(coef)
        self.intercept_ = np.atleast_1d(model.intercept_).astype(float)
        self.support_ = [np.flatnonzero(row) for row in coef]
        return self


class KernelRidgeEncoder(_LinearEncoder):
    """Ridge regression in its kernel (dual) form, for n_features >> n_samples (a baseline).

    Solves (K + alpha I) a = y with K = X X^T on centred data, so the cost is
    n_samples^2 x n_features instead of n_features^2.

    Parameters
    ----------
    alpha : float
        Ridge penalty, relative to the mean diagonal of the kernel (scale-free).
    fit_intercept : bool
    """

    _min_samples = 2

    def __init__(self, alpha=1.0, *, fit_intercept=True):
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def fit(self, X, y):
        X, Y = self._validated_fit_data(X, y)
        self.x_mean_ = X.mean(axis=0) if self.fit_intercept else np.zeros(X.shape[1])
        y_mean = Y.mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
        Xc = torch.from_numpy(X - self.x_mean_)
        kernel = Xc @ Xc.T
        penalty = self.alpha * float(torch.diagonal(kernel).mean().clamp_min(1e-12))
        dual = torch.linalg.solve(kernel + penalty * torch.eye(len(X), dtype=kernel.dtype), torch.from_numpy(Y - y_mean))
        self.coef_ = (Xc.T @ dual).T.numpy()  # (n_targets, n_features)
        self.intercept_ = y_mean - self.coef_ @ self.x_mean_
        return self


DEFAULT_RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-4, 4, 17))


# float64 columns of the centred features held at once: a conv layer has 10^5 units, and its
# whole centred float64 copy at 10,000 images would be 11 GB on top of the features themselves
_BLOCK_BYTES = 2**28


class _Arrays:
    """The constructors and decompositions the per-vertex ridge needs, on one device: NumPy on the
    CPU (its OpenBLAS LAPACK ran eigh 1.7x and float64 products 1.9x faster than torch's bundled
    MKL on this project's CPUs), torch on a CUDA device. Everything else the ridge code does
    (products, reductions with ``axis=``, ``clip``, integer indexing) reads the same in both."""

    def __init__(self, device=None):
        self.device = resolve_device(device)
        self.on_torch = self.device.type != "cpu"

    def asarray(self, values):
        values = np.asarray(values)
        if not self.on_torch:
            return values
        values = np.ascontiguousarray(values)
        # a read-only array (a memory map of the kernel store, an activation file) is copied: torch
        # wraps only writable memory
        return torch.from_numpy(values if values.flags.writeable else values.copy()).to(self.device)

    def zeros(self, shape):
        return torch.zeros(shape, dtype=torch.float64, device=self.device) if self.on_torch else np.zeros(shape)

    def empty(self, shape, integer: bool = False):
        if self.on_torch:
            return torch.empty(shape, dtype=torch.int64 if integer else torch.float64, device=self.device)
        return np.empty(shape, dtype=np.int64 if integer else np.float64)

    def eigh(self, matrix):
        return torch.linalg.eigh(matrix) if self.on_torch else np.linalg.eigh(matrix)

    def unique(self, values) -> list:
        return (torch.unique(values) if self.on_torch else np.unique(values)).tolist()

    def numpy(self, values) -> np.ndarray:
        return values.cpu().numpy() if self.on_torch else values


_NUMPY = _Arrays("cpu")  # predict: the fitted weights are NumPy arrays, whatever device fitted them


def _device_blocks(X: np.ndarray, x_mean, arrays: _Arrays, rows: int = 0):
    """(columns, centred float64 block (n_samples, width)) over the feature columns of ``X``, as
    arrays of ``arrays``' device (``x_mean`` on it too). ``rows``: of another array the caller
    forms per block (weights, a second block), so that it too stays within the block size."""
    width = max(1, _BLOCK_BYTES // (8 * max(len(X), rows, 1)))
    for start in range(0, X.shape[1], width):
        columns = slice(start, start + width)
        yield columns, arrays.asarray(np.asarray(X[:, columns], dtype=np.float64)) - x_mean[columns]


def _kernel_eigenbasis(X: np.ndarray, x_mean, arrays: _Arrays):
    """Nonnegative eigenvalues (r,) and orthonormal eigenvectors (n_samples, r) of the kernel
    ``Xc Xc^T`` of the centred features Xc = X - x_mean, r <= min(n_samples, n_features).

    With fewer samples than features the kernel is summed block of columns by block, so no
    centred copy of a wide layer is held. With more samples than features (thousands of images, a
    few thousand units) the eigenvectors come from the (n_features, n_features) covariance
    instead: its nonzero spectrum is the kernel's, and U = Xc V / sqrt(lambda). That costs n p^2
    instead of n^3 (10,000 images x 512 units: 1.3e10 instead of 1e12 multiply-adds). The
    kernel's null directions are left out: their shrinkage lambda / (lambda + penalty) is 0, so
    they change no fit, leverage or coefficient."""
    n_samples, n_features = X.shape
    if n_samples <= n_features:
        return _Kernels(X, x_mean, arrays).full()
    Xc = arrays.asarray(np.asarray(X, dtype=np.float64)) - x_mean  # (n, p) with p < n: no larger than the kernel
    eigenvalues, V = arrays.eigh(Xc.T @ Xc)
    # numerically zero directions (rank-deficient features) have no reliable eigenvector in
    # sample space; numpy's matrix_rank uses the same tolerance
    kept = eigenvalues > max(float(eigenvalues.max()), 0.0) * max(Xc.shape) * np.finfo(float).eps
    eigenvalues, V = eigenvalues[kept], V[:, kept]
    return eigenvalues, (Xc @ V) / eigenvalues ** 0.5


def _gram(X: np.ndarray, x_mean, arrays: _Arrays):
    """(n_samples, n_samples) Gram matrix of the centred features, summed a block of columns at a time."""
    gram = arrays.zeros((len(X), len(X)))
    for _, block in _device_blocks(X, x_mean, arrays):
        gram += block @ block.T
    return gram


class _Kernels:
    """The Gram matrix of the centred features and the eigendecompositions a dual ridge reads (the
    full kernel's, each fold's), each computed at most once: through the active `kernel_store`
    when there is one (shared with every later fit on the same features, by content), else here.
    Arrays are on ``arrays``' device."""

    def __init__(self, X: np.ndarray, centre, arrays: _Arrays):
        self.X, self.centre, self.arrays = X, centre, arrays
        self.store = active_kernel_store()
        self._digest = None
        self._gram = None

    def _through_store(self, kind: str, parts: tuple, compute, names: tuple) -> dict:
        if self.store is None:
            return compute()
        if self._digest is None:
            self._digest = features_digest(self.X)
        centre = hashlib.sha256(np.ascontiguousarray(self.arrays.numpy(self.centre))).hexdigest()
        key = hashlib.sha256(repr((self._digest, centre, self.arrays.device.type, *parts)).encode()).hexdigest()[:32]
        found = self.store.load_or_compute(kind, key, lambda: {k: self.arrays.numpy(v) for k, v in compute().items()},
                                           names)
        return {name: self.arrays.asarray(values) if self.arrays.on_torch else values for name, values in found.items()}

    def gram(self):
        if self._gram is None:
            self._gram = self._through_store("gram", (), lambda: {"gram": _gram(self.X, self.centre, self.arrays)},
                                             ("gram",))["gram"]
        return self._gram

    def full(self):
        """(eigenvalues (n,) clipped at 0, eigenvectors (n, n)) of the whole centred kernel."""
        return self._decomposed(self._through_store("full", (), lambda: self._eigen(self.gram()), self._EIGEN))

    def fold(self, train: np.ndarray, test: np.ndarray, centred: bool):
        """(eigenvalues, eigenvectors, test-by-train kernel) of a fold, centred on its training
        mean when ``centred`` (see `_fold_kernels`)."""
        def compute():
            kernel, cross = _fold_kernels(self.gram(), train, test, centred, self.arrays)
            return {**self._eigen(kernel), "cross": cross}

        parts = (centred, *(hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64)).hexdigest()
                            for rows in (train, test)))
        found = self._through_store("fold", parts, compute, (*self._EIGEN, "cross"))
        return (*self._decomposed(found), found["cross"])

    _EIGEN = ("eigenvalues", "vectors")

    def _eigen(self, kernel) -> dict:
        eigenvalues, vectors = self.arrays.eigh(kernel)
        return {"eigenvalues": eigenvalues.clip(min=0.0), "vectors": vectors}

    @staticmethod
    def _decomposed(found: dict) -> tuple:
        return found["eigenvalues"], found["vectors"]


def _ridge_dual(eigenvalues, Q, Yc, penalties, chosen, arrays: _Arrays):
    """(n_samples, n_targets) dual coefficients (K + penalty I)^-1 y, each target with its penalty."""
    dual = arrays.empty((len(Q), Yc.shape[1]))
    for k in arrays.unique(chosen):
        targets = chosen == k
        dual[:, targets] = Q @ ((Q.T @ Yc[:, targets]) / (eigenvalues + penalties[k])[:, None])
    return dual


def _fold_kernels(gram, train: np.ndarray, test: np.ndarray, centred: bool, arrays: _Arrays):
    """A fold's (train x train) kernel and (test x train) cross kernel from the Gram matrix G of
    all samples: with mu the training mean, (x_i - mu).(x_j - mu) = G_ij - g_i - g_j + c, where
    g_i = x_i.mu is the row mean of G over the training columns and c = mu.mu their mean."""
    train, test = arrays.asarray(train), arrays.asarray(test)
    kernel = gram[train][:, train]
    cross = gram[test][:, train]
    if centred:
        row_means = kernel.mean(axis=1)
        grand = row_means.mean()
        kernel -= row_means[:, None]
        kernel -= row_means[None, :]
        kernel += grand
        cross -= cross.mean(axis=1)[:, None]
        cross -= row_means[None, :]
        cross += grand
    return kernel, cross


def _primal_weights(X, x_mean, dual, arrays: _Arrays) -> np.ndarray:
    """(n_targets, n_features) ridge weights Xc^T a of dual coefficients a (n_samples, n_targets),
    a block of feature columns at a time."""
    # (n_targets, n_features) in C order, each block a contiguous run of every target's row: a
    # target range (one ROI of a joint fit) is then a contiguous view, sliced and saved without
    # gathering strided rows of a 10^5-unit layer
    weights = np.empty((dual.shape[1], X.shape[1]))
    for columns, block in _device_blocks(X, x_mean, arrays, rows=dual.shape[1]):
        weights[:, columns] = arrays.numpy(dual.T @ block)
    return weights


def _centred_products(X, X_fit, x_mean) -> np.ndarray:
    """(n_samples, n_fit) products X (X_fit - x_mean)^T in float64, a block of columns at a time
    (both may be float32 activations of a 10^5-unit layer)."""
    products = np.zeros((len(X), len(X_fit)))
    for columns, block in _device_blocks(X_fit, x_mean, _NUMPY, rows=len(X)):
        products += np.asarray(X[:, columns], dtype=np.float64) @ block.T
    return products


def stores_dual(model) -> bool:
    """Whether a fitted `RidgeCVEncoder` holds its weights in dual form (``dual_coef_``, ``X_fit_``):
    ``coef_`` is then formed on request only."""
    return "dual_coef_" in vars(model) and "coef_" not in vars(model)


def _fold_rows(rows, n_samples: int) -> np.ndarray:
    """A fold's samples as int64 indices (a boolean mask of ``n_samples`` too)."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n_samples,):
            raise ValueError(f"folds: a boolean mask must have one value per sample ({n_samples}), found {rows.shape}")
        return np.flatnonzero(rows)
    return rows.astype(np.int64, copy=False).ravel()


class RidgeCVEncoder(_LinearEncoder):
    """Ridge regression with one penalty per target (vertex), chosen by leave-one-out error.

    The kernel X X^T of the centred features is eigendecomposed once (n_samples^2 x
    n_features); every penalty of the grid then costs n_samples^2 x n_targets, with the exact
    leave-one-out residuals (y - y_hat) / (1 - h_ii) of the hat matrix, as scikit-learn's
    ``RidgeCV(alpha_per_target=True)`` with its default efficient leave-one-out. Targets are
    handled in chunks, so memory stays bounded for whole-brain data. The linear algebra (kernel,
    eigendecomposition, penalties) runs in float64 on ``device``: CUDA when present.

    Parameters
    ----------
    alphas : sequence of float
        Penalties relative to the mean diagonal of the kernel (scale-free, as
        `KernelRidgeEncoder`'s ``alpha``); default 1e-4 ... 1e4, two per decade.
    fit_intercept : bool
    chunk : int
        Targets scored at once.
    device : str or torch.device, optional
        Default CUDA when available, else the CPU. The fitted weights are NumPy arrays either way.

    Attributes
    ----------
    alpha_ : array (n_targets,)
        The chosen relative penalty of each target.
    coef_ : array (n_targets, n_features)
        The weights. With more targets than samples and no more samples than features (a whole
        cortex on a wide layer) the fit keeps the smaller dual form below instead, and ``coef_``
        is formed from it on each access (``predict`` never forms it).
    dual_coef_ : array (n_samples, n_targets)
        Only in the dual form: coef_ = dual_coef_^T (X_fit_ - x_mean_).
    X_fit_ : array (n_samples, n_features)
        Only in the dual form: the training features, not copied (as scikit-learn's
        ``KernelRidge``): changing that array in place changes the model.
    x_mean_ : array (n_features,)
        Only in the dual form: the features' training mean.
    intercept_ : array (n_targets,)

    Examples
    --------
    >>> import numpy as np
    >>> from brainprobe.encoding import RidgeCVEncoder
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 200)); Y = X[:, :5] @ rng.normal(size=(5, 3)) + rng.normal(size=(60, 3))
    >>> RidgeCVEncoder().fit(X, Y).alpha_.shape
    (3,)
    """

    _min_samples = 3

    def __init__(self, alphas=DEFAULT_RIDGE_ALPHAS, *, fit_intercept=True, chunk=4096, device=None):
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.chunk = chunk
        self.device = device

    def fit(self, X, y):
        # float32 features (activations) stay float32: sums and products are taken in float64
        # a block of columns at a time, never on a whole float64 copy of the layer
        X, Y = self._validated_fit_data(X, y, dtype=(np.float64, np.float32))
        Y = np.asarray(Y, dtype=np.float64)
        alphas = self._checked_alphas()
        arrays = _Arrays(self.device)
        x_mean = X.mean(axis=0, dtype=np.float64) if self.fit_intercept else np.zeros(X.shape[1])
        y_mean = Y.mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
        Yc, centre = arrays.asarray(Y - y_mean), arrays.asarray(x_mean)
        eigenvalues, Q = _kernel_eigenbasis(X, centre, arrays)
        penalties, chosen = self._loo_penalties(eigenvalues, Q, Yc, alphas, arrays)
        self.alpha_ = alphas[arrays.numpy(chosen)]
        dual = _ridge_dual(eigenvalues, Q, Yc, penalties, chosen, arrays)
        for name in ("coef_", "dual_coef_", "X_fit_", "x_mean_"):  # a refit keeps no weights of the last fit
            vars(self).pop(name, None)
        if len(X) <= X.shape[1] and Y.shape[1] > len(X):
            # more targets than samples: (n_samples, n_targets) dual coefficients and the features
            # are smaller than (n_targets, n_features) weights (1,906 vertices of a 140,000-unit
            # layer: 2.1 GB of weights; 30,000 vertices: 34 GB)
            self.dual_coef_, self.X_fit_, self.x_mean_ = arrays.numpy(dual), X, x_mean
            self.intercept_ = y_mean - self.dual_coef_.T @ _centred_products(x_mean[None], X, x_mean)[0]
        else:
            self.coef_ = _primal_weights(X, centre, dual, arrays)
            self.intercept_ = y_mean - self.coef_ @ x_mean
        return self

    def __getattr__(self, name):
        # a fit in dual form forms its weights when asked for them (each time: they may be GBs)
        if name == "coef_" and "dual_coef_" in vars(self):
            return _primal_weights(self.X_fit_, self.x_mean_, self.dual_coef_, _NUMPY)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _checked_alphas(self) -> np.ndarray:
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        if not len(alphas) or not (alphas > 0).all():
            raise ValueError(f"alphas: expected positive penalties, found {self.alphas!r}")
        return alphas

    def _loo_penalties(self, eigenvalues, Q, Yc, alphas, arrays: _Arrays):
        """The absolute penalties of the grid and each target's index into it, by the exact
        leave-one-out error of ridge in the kernel's eigenbasis (arrays of ``arrays``' device)."""
        n_samples = len(Q)
        scale = max(float(eigenvalues.sum() / n_samples), 1e-12)  # the mean diagonal of the kernel
        penalties = arrays.asarray(alphas * scale)
        chosen = arrays.empty(Yc.shape[1], integer=True)
        squared = Q * Q
        for start in range(0, Yc.shape[1], self.chunk):
            QtY = Q.T @ Yc[:, start:start + self.chunk]
            errors = arrays.empty((len(penalties), QtY.shape[1]))
            for k, penalty in enumerate(penalties):
                shrink = eigenvalues / (eigenvalues + penalty)
                fitted = Q @ (shrink[:, None] * QtY)
                # leave-one-out residual of ridge: (y - y_hat) / (1 - h_ii); the hat's diagonal
                # with an intercept adds 1/n (the mean is refitted without the left-out sample)
                leverage = squared @ shrink + (1.0 / n_samples if self.fit_intercept else 0.0)
                residual = (Yc[:, start:start + self.chunk] - fitted) / (1.0 - leverage)[:, None]
                errors[k] = (residual * residual).sum(axis=0)
            chosen[start:start + QtY.shape[1]] = errors.argmin(axis=0)
        return penalties, chosen

    def cross_val_predict(self, X, y, folds) -> np.ndarray:
        """Each sample's prediction by this estimator fitted on the other samples of its fold.

        The same numbers as ``clone(self).fit(X[train], y[train]).predict(X[test])`` for every
        ``(train, test)`` of ``folds``, computed without copying ``X``: with fewer training samples
        than features, the Gram matrix of the (globally centred) features is formed once, a block
        of columns at a time, and every fold's kernel, its centring on the fold's training mean
        and its test-by-train kernel are read from it. Five folds of a 10^5-unit layer then cost
        one pass over the features instead of five copies and five passes.

        Parameters
        ----------
        X : array (n_samples, n_features)
        y : array (n_samples,) or (n_samples, n_targets)
        folds : sequence of (train, test) index arrays
            Every sample in one test fold (e.g. ``KFold(5).split(X)``).

        Returns
        -------
        array (n_samples,) or (n_samples, n_targets)
            As ``y``, as `predict` gives.
        """
        X, Y = self._validated_fit_data(X, y, dtype=(np.float64, np.float32))
        Y = np.asarray(Y, dtype=np.float64)
        folds = [(_fold_rows(train, len(X)), _fold_rows(test, len(X))) for train, test in folds]
        if not folds:
            raise ValueError("folds: expected at least one (train, test) pair of sample indices, found none")
        predicted = self._fold_predictions(X, Y, folds)
        return predicted[:, 0] if self._single_output else predicted

    def _fold_predictions(self, X, Y, folds) -> np.ndarray:
        predicted = np.empty_like(Y)
        if max(len(train) for train, _ in folds) > X.shape[1]:  # the covariance route: folds are small copies
            for train, test in folds:
                predicted[test] = clone(self).fit(X[train], Y[train]).predict(X[test]).reshape(len(test), -1)
            return predicted
        alphas = self._checked_alphas()
        arrays = _Arrays(self.device)
        # a shift of every sample alike changes no centred fold kernel; it keeps the Gram well scaled
        centre = X.mean(axis=0, dtype=np.float64) if self.fit_intercept else np.zeros(X.shape[1])
        kernels = _Kernels(X, arrays.asarray(centre), arrays)
        for train, test in folds:
            eigenvalues, Q, cross = kernels.fold(train, test, self.fit_intercept)
            y_mean = Y[train].mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
            Yc = arrays.asarray(Y[train] - y_mean)
            penalties, chosen = self._loo_penalties(eigenvalues, Q, Yc, alphas, arrays)
            dual = _ridge_dual(eigenvalues, Q, Yc, penalties, chosen, arrays)
            predicted[test] = arrays.numpy(cross @ dual) + y_mean
        return predicted
