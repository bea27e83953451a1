"""EncodingModels.save / load: an exact, pickle-free round trip that keeps the fitted folds."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression

from brainprobe import InputFileError
from brainprobe._errors import MissingFileError
from brainprobe.data import Responses
from brainprobe.encoding import (
    ROMP,
    EncodingModels,
    KernelRidgeEncoder,
    OMPEncoder,
    RidgeCVEncoder,
    best_layer,
    fit_encoding_models,
    heldout_accuracy,
)
from brainprobe.models import Activations

N_IMAGES = 24


def _data():
    """Two layers, two ROIs: V1 reads the first layer's first units, LO the second's (plus noise)."""
    rng = np.random.default_rng(7)
    ids = [f"im{i}" for i in range(N_IMAGES)]
    layers = {"low": rng.normal(size=(N_IMAGES, 30)), "high": rng.normal(size=(N_IMAGES, 30))}
    signal = np.concatenate([layers["low"][:, :3] @ rng.normal(size=(3, 8)),
                             layers["high"][:, :3] @ rng.normal(size=(3, 6))], axis=1)
    betas = np.concatenate([signal + 0.5 * rng.normal(size=signal.shape) for _ in range(2)])
    trials = pd.DataFrame({"image_id": ids * 2, "repeat": [1] * N_IMAGES + [2] * N_IMAGES})
    responses = Responses(betas, trials)
    responses.add_roi("V1", np.arange(14) < 8)
    responses.add_roi("LO", np.arange(14) >= 8)
    return Activations(layers, image_ids=ids), responses


@pytest.fixture(scope="module")
def data():
    return _data()


def _same(a, b) -> bool:
    """Equal value, type and dtype (arrays by np.array_equal, sparse matrices entry by entry)."""
    if type(a) is not type(b):
        return False
    if sp.issparse(a):
        return a.shape == b.shape and a.dtype == b.dtype and (a != b).nnz == 0
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("estimator", [ROMP(n_nonzero=2), ROMP(n_nonzero="cv", cv_grid=(1, 2), cv=3), OMPEncoder(2),
                                       KernelRidgeEncoder(alpha=0.5), RidgeCVEncoder(alphas=(0.1, 1.0, 10.0))],
                         ids=["romp", "romp-cv", "omp", "kernel-ridge", "ridge-cv"])
def test_round_trip_is_exact(data, estimator, tmp_path):
    activations, responses = data
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=estimator)
    heldout_accuracy(models, activations, responses, cv=4, n_perm=0)  # caches the folds' predictions
    assert len(models.heldout) == 4
    path = models.save(tmp_path / "models.npz")
    loaded = EncodingModels.load(path)
    assert (loaded.subjects, loaded.rois, loaded.layers) == (models.subjects, models.rois, models.layers)
    assert loaded.models.keys() == models.models.keys()
    for key, model in models.models.items():
        again = loaded.models[key]
        assert type(again) is type(model) and repr(again) == repr(model)
        assert vars(again).keys() == vars(model).keys()
        for name, value in vars(model).items():
            assert _same(vars(again)[name], value), (key, name)
        X = np.asarray(activations[key[2]])
        assert np.array_equal(again.predict(X), model.predict(X))
    assert loaded.columns.keys() == models.columns.keys()
    assert all(_same(loaded.columns[k], v) for k, v in models.columns.items())
    assert loaded.train_images == models.train_images
    assert loaded.heldout.keys() == models.heldout.keys()
    assert all(_same(loaded.heldout[k], v) for k, v in models.heldout.items())
    with pytest.raises(FileExistsError, match="overwrite"):
        models.save(path)


def _count_fits(monkeypatch) -> list:
    calls = []
    real = ROMP.fit

    def counted(self, X, y):
        calls.append(X.shape)
        return real(self, X, y)

    monkeypatch.setattr(ROMP, "fit", counted)
    return calls


def test_heldout_accuracy_and_best_layer_share_the_folds_also_after_a_load(data, tmp_path, monkeypatch):
    activations, responses = data
    calls = _count_fits(monkeypatch)
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=ROMP(n_nonzero=2))
    assert len(calls) == 2  # one batched fit per layer
    before = heldout_accuracy(models, activations, responses, cv=4, n_perm=50, seed=1)
    assert len(calls) == 2 + 2 * 4  # layer x folds, once: both ROIs' vertices in one fit per fold
    best = best_layer(models, activations, responses, on="RE", cv=4)
    assert len(calls) == 2 + 8  # best_layer read the same folds
    loaded = EncodingModels.load(models.save(tmp_path / "models.npz"))
    after = heldout_accuracy(loaded, activations, responses, cv=4, n_perm=50, seed=1)
    again = best_layer(loaded, activations, responses, on="RE", cv=4)
    assert len(calls) == 2 + 8  # nothing refitted after the load
    pd.testing.assert_frame_equal(after, before)
    pd.testing.assert_frame_equal(again, best)
    heldout_accuracy(loaded, activations, responses, cv=3, n_perm=0)  # other folds are fitted, once
    assert len(calls) == 2 + 8 + 2 * 3


def test_cross_validate_and_subset_keep_what_heldout_accuracy_reads(data, monkeypatch):
    activations, responses = data
    lazy = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=ROMP(n_nonzero=2))
    expected = heldout_accuracy(lazy.subset(rois=["LO"], layers=["high"]), activations, responses, cv=4, n_perm=50)
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=ROMP(n_nonzero=2))
    calls = _count_fits(monkeypatch)
    models.cross_validate(activations, responses, cv=4, layers=["high"])
    assert len(calls) == 4 and len(models.heldout) == 2  # one fit per fold serves both ROIs
    part = models.subset(rois=["LO"], layers=["high"])
    assert (part.rois, part.layers, len(part), len(part.heldout)) == (["LO"], ["high"], 1, 1)
    assert part[("sub-01", "LO", "high")] is models[("sub-01", "LO", "high")]
    pd.testing.assert_frame_equal(heldout_accuracy(part, activations, responses, cv=4, n_perm=50), expected)
    assert len(calls) == 4
    with pytest.raises(KeyError, match="no models for"):
        models.subset(layers=["fc9"])


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    activations, responses = data
    models = fit_encoding_models(activations, responses, ["V1", "LO"], estimator=ROMP(n_nonzero=2))
    models.cross_validate(activations, responses, cv=4)
    return models.save(tmp_path_factory.mktemp("models") / "models.npz")


def _rewrite(source, target, change):
    """A copy of ``source`` with its arrays passed through ``change`` (a dict -> dict function)."""
    with np.load(source, allow_pickle=False) as found:
        arrays = {k: found[k] for k in found.files}
    arrays = change(arrays)
    with open(target, "wb") as handle:
        np.savez(handle, **arrays)
    return target


def _manifest_edit(edit):
    def change(arrays):
        manifest = json.loads(str(arrays["manifest"]))
        edit(manifest)
        return {**arrays, "manifest": np.asarray(json.dumps(manifest))}
    return change


def test_foreign_and_corrupt_files_are_refused_with_the_file_and_field(data, saved, tmp_path):
    activations, _ = data
    foreign = activations.save(tmp_path / "activations.npz")
    with pytest.raises(InputFileError, match=r"activations\.npz: field 'manifest'"):
        EncodingModels.load(foreign)
    with pytest.raises(MissingFileError, match="absent.npz"):
        EncodingModels.load(tmp_path / "absent.npz")
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(InputFileError, match=r"text\.npz: cannot be read"):
        EncodingModels.load(text)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(InputFileError, match=r"cut\.npz"):
        EncodingModels.load(cut)
    flipped = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:  # one byte of a stored array changed: its CRC fails
        info = archive.getinfo("heldout/0.npy")
    flipped[info.header_offset + 30 + len(info.filename) + info.file_size - 1] ^= 0xFF
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(flipped))
    with pytest.raises(InputFileError, match=r"damaged\.npz"):
        EncodingModels.load(damaged)
    cases = {
        "format": (_manifest_edit(lambda m: m.update(format="brainprobe.Activations")), r"field 'format'"),
        "version": (_manifest_edit(lambda m: m.update(version=99)), r"field 'version': expected 1, found 99"),
        "class": (_manifest_edit(lambda m: m["models"][0].update({"class": "Popen"})),
                  r"field 'models\[0\]\.class': expected one of .*found 'Popen'"),
        "array": (lambda a: {k: v for k, v in a.items() if k != "model/0/coef_/data"},
                  r"field 'models\[0\]\.fitted\.coef_': arrays \['model/0/coef_/data'\] are missing"),
        "heldout": (lambda a: {**a, "heldout/1": a["heldout/1"][:-1]}, r"field 'heldout'.*expected shape"),
        "manifest": (lambda a: {**a, "manifest": np.asarray("{not json")}, r"field 'manifest': not valid JSON"),
    }
    for name, (change, message) in cases.items():
        path = _rewrite(saved, tmp_path / f"{name}.npz", change)
        with pytest.raises(InputFileError, match=rf"{name}\.npz: {message}"):
            EncodingModels.load(path)


def test_pickled_arrays_and_foreign_estimators_are_never_stored_or_loaded(data, saved, tmp_path):
    pickled = tmp_path / "pickled.npz"
    with np.load(saved, allow_pickle=False) as found:
        arrays = {k: found[k] for k in found.files}
    arrays["columns/0"] = np.asarray([object()], dtype=object)
    np.savez(pickled, **arrays)  # np.savez pickles object arrays; loading must refuse them
    with pytest.raises(InputFileError, match=r"pickled\.npz.*allow_pickle"):
        EncodingModels.load(pickled)
    activations, responses = data
    models = fit_encoding_models(activations, responses, ["V1"], estimator=LinearRegression())
    with pytest.raises(TypeError, match="is a LinearRegression; the .npz layout stores brainprobe's encoders only"):
        models.save(tmp_path / "ridge.npz")
    assert not (tmp_path / "ridge.npz").exists()


def test_consecutive_images_are_read_in_place_and_others_copied(data, tmp_path):
    """A layer's rows for images stored together are a view (a memory-mapped layer of 10,000 images
    stays on disk instead of a 5 GB copy per fit); images in another order are gathered."""
    from brainprobe.encoding._study import layer_rows

    activations, _ = data
    ids = list(activations.image_ids)
    stored = np.asarray(activations["low"])
    every, middle = layer_rows(activations, "low", ids), layer_rows(activations, "low", ids[3:10])
    assert np.shares_memory(every, stored) and np.shares_memory(middle, stored)
    np.testing.assert_array_equal(middle, stored[3:10])
    shuffled = ids[::-1]
    reordered = layer_rows(activations, "low", shuffled)
    assert not np.shares_memory(reordered, stored)
    np.testing.assert_array_equal(reordered, stored[::-1])
