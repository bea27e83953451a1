"""`EncodingModels` to and from one ``.npz`` file, without pickles.

The file holds one JSON manifest (array ``manifest``: subjects, ROIs, layers, each model's
estimator class and parameters and the names of its fitted arrays, the held-out predictions'
cross-validation settings) and plain arrays: each model's fitted attributes (``coef_`` dense or
as the three arrays of a sparse matrix, or a tuned ridge's ``dual_coef_``, ``X_fit_`` and
``x_mean_``; ``intercept_``, ``support_`` ...; an array several models share, as the training
features of the ROIs of one dual-form fit, is written once), each ROI's columns,
each subject's training images and the cached held-out predictions. Estimators are rebuilt only
from brainprobe's own encoder classes (a file cannot name code to import), and every value comes
back with its type and dtype, so a loaded object equals the saved one exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._errors import InputFileError, check_format
from .._npz import read_npz, write_npz
from ._estimators import ROMP, KernelRidgeEncoder, OMPEncoder, RidgeCVEncoder, stores_dual

__all__ = ["FORMAT", "load_models", "save_models"]

FORMAT = "brainprobe.EncodingModels"
VERSION = 1
# the only classes a file can ask for: rebuilding an estimator never imports what a file names
ESTIMATORS = {cls.__name__: cls for cls in (ROMP, OMPEncoder, KernelRidgeEncoder, RidgeCVEncoder)}
SPARSE = {name: getattr(sp, name) for name in ("csr_matrix", "csr_array", "csc_matrix", "csc_array")
          if hasattr(sp, name)}


# -- JSON values that keep their Python type (tuples, int dict keys, numpy scalars) ----------------
def _encode(value, field: str):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return {"numpy": value.dtype.str, "value": value.item()}
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, field) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v, field) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, field), _encode(v, field)] for k, v in value.items()]}
    raise TypeError(f"EncodingModels.save: {field} is a {type(value).__name__}, which the .npz layout cannot "
                    "store without a pickle")


def _decode(value, field: str, path):
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag in ("tuple", "list") and isinstance(inner, list):
            items = [_decode(v, field, path) for v in inner]
            return tuple(items) if tag == "tuple" else items
        if tag == "dict" and isinstance(inner, list) and all(isinstance(p, list) and len(p) == 2 for p in inner):
            return {_decode(k, field, path): _decode(v, field, path) for k, v in inner}
    if isinstance(value, dict) and set(value) == {"numpy", "value"}:
        try:
            return np.dtype(value["numpy"]).type(value["value"])
        except (TypeError, ValueError) as error:
            raise InputFileError(f"{path}: field {field!r}: not a numpy scalar ({error})") from error
    raise InputFileError(f"{path}: field {field!r}: expected a value written by EncodingModels.save, found "
                         f"{str(value)[:80]}")


# -- fitted attributes as arrays -------------------------------------------------------------------
def _store(value, name: str, arrays: dict, field: str, stored: dict) -> dict:
    """Put one fitted attribute into ``arrays`` under ``name``; return how to read it back.
    ``stored`` maps id() of each array already put to its name: an array several models share
    (the training features of the ROIs of one dual-form fit) is written once."""
    if sp.issparse(value):
        kind = type(value).__name__
        if kind not in SPARSE:
            value, kind = sp.csr_matrix(value), "csr_matrix"
        arrays.update({f"{name}/data": value.data, f"{name}/indices": value.indices,
                       f"{name}/indptr": value.indptr, f"{name}/shape": np.asarray(value.shape, dtype=np.int64)})
        return {"kind": "sparse", "class": kind, "array": name}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            if not all(isinstance(v, str) for v in value.ravel()):
                raise TypeError(f"EncodingModels.save: {field} is an object array of non-strings")
            arrays[name] = value.astype(str)
            return {"kind": "object_str", "array": name}
        name = stored.setdefault(id(value), name)
        arrays[name] = value
        return {"kind": "array", "array": name}
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        dtypes = {v.dtype.str for v in value}
        if len(dtypes) > 1 or any(v.ndim != 1 for v in value):
            raise TypeError(f"EncodingModels.save: {field} is a list of arrays of several dtypes or dimensions")
        arrays[f"{name}/values"] = np.concatenate(value)
        arrays[f"{name}/lengths"] = np.asarray([len(v) for v in value], dtype=np.int64)
        return {"kind": "array_list", "array": name}
    return {"kind": "json", "value": _encode(value, field)}


def _fetch(spec, arrays: dict, field: str, path):
    """The attribute `_store` described by ``spec``."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise InputFileError(f"{path}: field {field!r}: expected an attribute description, found {str(spec)[:80]}")
    kind = spec["kind"]
    if kind == "json":
        return _decode(spec.get("value"), field, path)
    name = spec.get("array")
    parts = {"sparse": ("data", "indices", "indptr", "shape"), "array_list": ("values", "lengths")}.get(kind)
    if kind not in ("array", "object_str", "sparse", "array_list"):
        raise InputFileError(f"{path}: field {field!r}: unknown kind {kind!r}")
    needed = [name] if parts is None else [f"{name}/{p}" for p in parts]
    missing = [n for n in needed if n not in arrays]
    if not isinstance(name, str) or missing:
        raise InputFileError(f"{path}: field {field!r}: arrays {missing or [name]} are missing")
    if kind == "array":
        return arrays[name]
    if kind == "object_str":
        return arrays[name].astype(object)
    if kind == "array_list":
        lengths = arrays[f"{name}/lengths"]
        values = arrays[f"{name}/values"]
        if lengths.sum() != len(values):
            raise InputFileError(f"{path}: field {field!r}: lengths sum to {lengths.sum()}, found {len(values)} values")
        return [part.copy() for part in np.split(values, np.cumsum(lengths)[:-1])]
    if spec.get("class") not in SPARSE:
        raise InputFileError(f"{path}: field {field!r}: expected a sparse class among {sorted(SPARSE)}, "
                             f"found {spec.get('class')!r}")
    try:
        return SPARSE[spec["class"]]((arrays[f"{name}/data"], arrays[f"{name}/indices"], arrays[f"{name}/indptr"]),
                                     shape=tuple(int(n) for n in arrays[f"{name}/shape"]))
    except (TypeError, ValueError) as error:
        raise InputFileError(f"{path}: field {field!r}: not a valid sparse matrix ({error})") from error


def save_models(models, path, *, overwrite: bool = False) -> Path:
    """Write ``models`` (an `EncodingModels`) to one ``.npz`` file; see the module docstring."""
    arrays: dict[str, np.ndarray] = {}
    stored: dict[int, str] = {}  # the models are alive while saved: no id() is reused
    entries = []
    for i, (key, model) in enumerate(models.models.items()):
        field = f"models[{i}] {key}"
        cls = type(model).__name__
        if ESTIMATORS.get(cls) is not type(model):
            raise TypeError(f"EncodingModels.save: {field} is a {cls}; the .npz layout stores brainprobe's "
                            f"encoders only ({sorted(ESTIMATORS)})")
        params = model.get_params(deep=False)
        fitted = {name: _store(value, f"model/{i}/{name}", arrays, f"{field}.{name}", stored)
                  for name, value in vars(model).items() if name not in params}
        entries.append({"key": _encode(key, field), "class": cls,
                        "params": {k: _encode(v, f"{field}.{k}") for k, v in params.items()}, "fitted": fitted})
    columns = []
    for i, (key, found) in enumerate(models.columns.items()):
        arrays[f"columns/{i}"] = np.asarray(found)
        columns.append(_encode(key, f"columns {key}"))
    train = []
    for i, (subject, ids) in enumerate(models.train_images.items()):
        arrays[f"train_images/{i}"] = np.asarray(list(ids), dtype=str)
        train.append(_encode(subject, f"train_images {subject}"))
    heldout = []
    for i, (key, predicted) in enumerate(models.heldout.items()):
        arrays[f"heldout/{i}"] = np.asarray(predicted)
        heldout.append(_encode(key, f"heldout {key}"))
    manifest = {"format": FORMAT, "version": VERSION,
                "subjects": _encode(list(models.subjects), "subjects"), "rois": _encode(list(models.rois), "rois"),
                "layers": _encode(list(models.layers), "layers"), "models": entries, "columns": columns,
                "train_images": train,
                # (subject, roi, layer, cv, measurement, estimator) of each cached cross-validation
                "heldout": heldout}
    arrays["manifest"] = np.asarray(json.dumps(manifest))
    return write_npz(path, arrays, overwrite=overwrite)


def _manifest(arrays: dict, path) -> dict:
    if "manifest" not in arrays or arrays["manifest"].dtype.kind != "U" or arrays["manifest"].ndim != 0:
        raise InputFileError(f"{path}: field 'manifest': expected the JSON manifest of an EncodingModels file "
                             f"(EncodingModels.save), found arrays {sorted(arrays)[:8]}")
    try:
        manifest = json.loads(str(arrays["manifest"]))
    except ValueError as error:
        raise InputFileError(f"{path}: field 'manifest': not valid JSON ({error})") from error
    check_format(manifest, path, FORMAT, VERSION)
    for name in ("subjects", "rois", "layers", "models", "columns", "train_images", "heldout"):
        if name not in manifest:
            raise InputFileError(f"{path}: field {name!r} is missing from the manifest")
    return manifest


def _array(arrays: dict, name: str, path) -> np.ndarray:
    if name not in arrays:
        raise InputFileError(f"{path}: field {name!r}: array is missing")
    return arrays[name]


def _model(entry, i: int, arrays: dict, path):
    field = f"models[{i}]"
    if not isinstance(entry, dict) or not {"key", "class", "params", "fitted"} <= set(entry):
        raise InputFileError(f"{path}: field {field!r}: expected key, class, params and fitted")
    cls = ESTIMATORS.get(entry["class"])
    if cls is None:
        raise InputFileError(f"{path}: field '{field}.class': expected one of {sorted(ESTIMATORS)}, "
                             f"found {entry['class']!r}")
    params = {k: _decode(v, f"{field}.params.{k}", path) for k, v in entry["params"].items()}
    try:
        model = cls(**params)
    except TypeError as error:
        raise InputFileError(f"{path}: field '{field}.params': {error}") from error
    for name, spec in entry["fitted"].items():
        setattr(model, name, _fetch(spec, arrays, f"{field}.fitted.{name}", path))
    return _decode(entry["key"], f"{field}.key", path), model


def load_models(path, models_class):
    """Read an `EncodingModels` written by `save_models` (no pickles are loaded); built as
    ``models_class`` (`EncodingModels.load` passes itself: this module does not import it back).

    Raises
    ------
    InputFileError
        The file is not a ``.npz`` file, not an EncodingModels file, of another layout version,
        or one of its fields is missing or inconsistent (the message names the file and field).
    """
    arrays = read_npz(path)
    manifest = _manifest(arrays, path)
    models = dict(_model(entry, i, arrays, path) for i, entry in enumerate(manifest["models"]))
    columns = {_decode(key, f"columns[{i}]", path): _array(arrays, f"columns/{i}", path)
               for i, key in enumerate(manifest["columns"])}
    train = {_decode(subject, f"train_images[{i}]", path): _array(arrays, f"train_images/{i}", path).tolist()
             for i, subject in enumerate(manifest["train_images"])}
    heldout = {}
    for i, key in enumerate(manifest["heldout"]):
        key = _decode(key, f"heldout[{i}]", path)
        if not isinstance(key, tuple) or len(key) != 6:
            raise InputFileError(f"{path}: field 'heldout[{i}]': expected (subject, roi, layer, cv, measurement, "
                                 f"estimator), found {key!r}")
        heldout[key] = _array(arrays, f"heldout/{i}", path)
    result = models_class(models=models, columns=columns, train_images=train,
                          layers=_decode(manifest["layers"], "layers", path),
                          rois=_decode(manifest["rois"], "rois", path),
                          subjects=_decode(manifest["subjects"], "subjects", path), heldout=heldout)
    _check_consistent(result, path)
    return result


def _check_consistent(models, path) -> None:
    """Every model has its ROI's columns and every held-out prediction its shape."""
    finite: set[int] = set()  # id() of the arrays found finite: shared features are scanned once
    for (subject, roi, layer), model in models.models.items():
        columns = models.columns.get((subject, roi))
        if columns is None:
            raise InputFileError(f"{path}: field 'columns': no columns for ({subject!r}, {roi!r})")
        where = f"{path}: model ({subject!r}, {roi!r}, {layer!r})"
        if stores_dual(model):
            _check_dual(model, len(columns), where, finite)
        elif not hasattr(model, "coef_"):
            raise InputFileError(f"{where}: has no weights: expected field 'coef_' or 'dual_coef_'")
        else:
            n_targets = np.shape(model.coef_)[0]
            if n_targets != len(columns):
                raise InputFileError(f"{path}: field 'coef_' of ({subject!r}, {roi!r}, {layer!r}): expected "
                                     f"{len(columns)} rows (the ROI's columns), found {n_targets}")
        if np.ndim(getattr(model, "alpha_", None)) == 1 and len(model.alpha_) != len(columns):
            raise InputFileError(f"{where}: field 'alpha_': expected one penalty per ROI column ({len(columns)}), "
                                 f"found {len(model.alpha_)}")
    for key, predicted in models.heldout.items():
        subject, roi = key[0], key[1]
        expected = (len(models.train_images.get(subject, ())), len(models.columns.get((subject, roi), ())))
        if predicted.shape != expected:
            raise InputFileError(f"{path}: field 'heldout' {key[:4]}: expected shape {expected} (training images "
                                 f"x columns), found {predicted.shape}")


def _check_dual(model, n_columns: int, where: str, finite: set) -> None:
    """A dual-form ridge's arrays agree: X_fit_ (n_samples, n_features_in_) of finite floats,
    dual_coef_ (n_samples, n_columns), x_mean_ (n_features_in_,), intercept_ (n_columns,).
    ``finite`` holds id() of the arrays already found finite (the features the ROIs share)."""
    features = getattr(model, "X_fit_", None)
    n_features = getattr(model, "n_features_in_", None)
    if not isinstance(features, np.ndarray) or features.ndim != 2 or features.dtype.kind != "f":
        raise InputFileError(f"{where}: field 'X_fit_': expected the (n_samples, n_features) float training "
                             f"features of the dual form, found {_described(features)}")
    if n_features is not None and features.shape[1] != n_features:
        raise InputFileError(f"{where}: field 'X_fit_': expected {n_features} columns (n_features_in_), "
                             f"found {features.shape[1]}")
    expected = {"dual_coef_": (len(features), n_columns), "x_mean_": (features.shape[1],), "intercept_": (n_columns,)}
    for name, shape in expected.items():
        value = getattr(model, name, None)
        if np.shape(value) != shape:
            raise InputFileError(f"{where}: field {name!r}: expected shape {shape} (X_fit_ {features.shape}, "
                                 f"{n_columns} ROI columns), found {_described(value)}")
    for name in ("X_fit_", "dual_coef_", "x_mean_"):  # a NaN would make every prediction NaN
        value = getattr(model, name)
        if id(value) not in finite:
            if not _all_finite(value):
                raise InputFileError(f"{where}: field {name!r}: expected finite values, found NaN or inf")
            finite.add(id(value))


def _all_finite(values: np.ndarray) -> bool:
    """np.isfinite(values).all() a block of rows at a time: the features of a wide layer at
    10,000 images are GBs, and their whole boolean mask a quarter of that."""
    rows = max(1, 2**26 // max(values[:1].nbytes, 1))
    return all(np.isfinite(values[start:start + rows]).all() for start in range(0, len(values), rows))


def _described(value) -> str:
    if value is None:
        return "none"
    return f"shape {np.shape(value)} of {np.asarray(value).dtype}" if isinstance(value, np.ndarray) else repr(value)[:60]
