"""Kernel decompositions shared through a store: one per features, the same numbers as recomputing."""

import contextlib

import numpy as np
import pytest
from sklearn.model_selection import KFold

from brainprobe.encoding import RidgeCVEncoder, _estimators, kernel_store


@pytest.fixture
def counted(monkeypatch):
    """Counts of Gram passes and eigendecompositions made by the ridge code."""
    counts = {"gram": 0, "eigh": 0}
    real_gram, real_eigh = _estimators._gram, _estimators._Arrays.eigh

    def gram(*args):
        counts["gram"] += 1
        return real_gram(*args)

    def eigh(self, matrix):
        counts["eigh"] += 1
        return real_eigh(self, matrix)

    monkeypatch.setattr(_estimators, "_gram", gram)
    monkeypatch.setattr(_estimators._Arrays, "eigh", eigh)
    return counts


def _data(seed=0, n=60, p=240):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, p)) + 2.0).astype(np.float32)
    subjects = [X[:, :5] @ rng.normal(size=(5, 7)) + rng.normal(size=(n, 7)) for _ in range(3)]
    return X, subjects, list(KFold(5).split(X))


def test_subjects_on_the_same_images_decompose_the_kernels_once(tmp_path, counted):
    """A full fit and a 5-fold cross-validation for three subjects: one Gram pass and six
    eigendecompositions in all (the full kernel and five folds), with every coefficient,
    penalty and held-out prediction identical to computing them without a store."""
    X, subjects, folds = _data()
    expected = [(RidgeCVEncoder().fit(X, Y), RidgeCVEncoder().cross_val_predict(X, Y, folds)) for Y in subjects]
    counted.update(gram=0, eigh=0)
    with kernel_store(tmp_path / "kernels"):
        found = [(RidgeCVEncoder().fit(X, Y), RidgeCVEncoder().cross_val_predict(X, Y, folds)) for Y in subjects]
    assert counted == {"gram": 1, "eigh": 1 + len(folds)}
    for (fit, predicted), (reference, reference_predicted) in zip(found, expected, strict=True):
        np.testing.assert_array_equal(fit.alpha_, reference.alpha_)
        np.testing.assert_array_equal(fit.coef_, reference.coef_)  # the same bytes, read or computed
        np.testing.assert_array_equal(predicted, reference_predicted)
    # a later run reads every entry from disk: no pass over the layer, no decomposition
    counted.update(gram=0, eigh=0)
    with kernel_store(tmp_path / "kernels"):
        again = RidgeCVEncoder().cross_val_predict(X, subjects[1], folds)
        refit = RidgeCVEncoder().fit(X, subjects[1])
    assert counted == {"gram": 0, "eigh": 0}
    np.testing.assert_array_equal(again, found[1][1])
    np.testing.assert_array_equal(refit.coef_, found[1][0].coef_)


def test_other_features_folds_or_centring_never_read_an_entry(tmp_path, counted):
    X, (Y, *_), folds = _data()
    changed = X.copy()
    changed[7, 11] += 1e-3  # one activation of one image
    with kernel_store(tmp_path):
        RidgeCVEncoder().fit(X, Y)
        counted.update(gram=0, eigh=0)
        other = RidgeCVEncoder().fit(changed, Y)
        assert counted == {"gram": 1, "eigh": 1}
        np.testing.assert_array_equal(other.coef_, RidgeCVEncoder().fit(changed, Y).coef_)
        counted.update(gram=0, eigh=0)
        RidgeCVEncoder(fit_intercept=False).fit(X, Y)  # another centring: another kernel
        assert counted == {"gram": 1, "eigh": 1}
        RidgeCVEncoder().cross_val_predict(X, Y, folds)
        counted.update(gram=0, eigh=0)
        shuffled = list(KFold(5, shuffle=True, random_state=0).split(X))
        RidgeCVEncoder().cross_val_predict(X, Y, shuffled)
        assert counted == {"gram": 0, "eigh": len(shuffled)}  # the Gram is shared, the folds are new


def test_no_store_outside_the_block_and_entries_are_whole(tmp_path):
    X, (Y, *_), folds = _data()
    with kernel_store(tmp_path / "kernels") as store:
        RidgeCVEncoder().cross_val_predict(X, Y, folds)
    entries = sorted(path.name.split("-")[0] for path in (tmp_path / "kernels").iterdir())
    assert entries == ["fold"] * len(folds) + ["gram"]
    assert not list((tmp_path / "kernels").glob(".staging-*"))
    assert {path.name for path in store.entry("gram", next((tmp_path / "kernels").glob("gram-*")).name[5:]).iterdir()} \
        == {"gram.npy", "checksums.json"}
    RidgeCVEncoder().fit(X, Y)  # after the block: nothing more is written
    assert len(list((tmp_path / "kernels").iterdir())) == len(folds) + 1


def _damage(path, how: str):
    if how == "truncated":  # a full disk, a killed copy
        path.write_bytes(path.read_bytes()[:-800])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "edited":  # the same size, one value changed (a NaN)
        values = np.load(path)
        values.flat[3] = np.nan
        np.save(path, values)
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "empty", "edited", "deleted"])
def test_a_damaged_entry_is_computed_again_never_used(tmp_path, counted, how):
    X, (Y, *_), _ = _data()
    reference = RidgeCVEncoder().fit(X, Y)
    with kernel_store(tmp_path / "kernels"):
        RidgeCVEncoder().fit(X, Y)
    _damage(next((tmp_path / "kernels").glob("full-*")) / "vectors.npy", how)
    counted.update(gram=0, eigh=0)
    with kernel_store(tmp_path / "kernels"), pytest.warns(UserWarning, match="cannot be used"):
        again = RidgeCVEncoder().fit(X, Y)
    assert counted == {"gram": 0, "eigh": 1}  # the Gram entry was whole; the decomposition is redone
    np.testing.assert_array_equal(again.coef_, reference.coef_)
    counted.update(gram=0, eigh=0)
    with kernel_store(tmp_path / "kernels"):  # the entry written again is whole
        np.testing.assert_array_equal(RidgeCVEncoder().fit(X, Y).coef_, reference.coef_)
    assert counted == {"gram": 0, "eigh": 0}


def test_an_unwritable_store_is_still_read_and_computes_the_rest(tmp_path, monkeypatch, counted):
    from brainprobe.encoding import _kernels

    X, (Y, *_), folds = _data()
    with kernel_store(tmp_path / "kernels"):
        RidgeCVEncoder().fit(X, Y)  # the Gram and the full kernel are stored

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_kernels.np, "save", refused)
    counted.update(gram=0, eigh=0)
    with kernel_store(tmp_path / "kernels"), pytest.warns(UserWarning, match="cannot write") as said:
        fit = RidgeCVEncoder().fit(X, Y)
        predicted = RidgeCVEncoder().cross_val_predict(X, Y, folds)
    assert len([w for w in said if "cannot write" in str(w.message)]) == 1  # said once, not per entry
    assert counted == {"gram": 0, "eigh": len(folds)}
    np.testing.assert_array_equal(fit.coef_, RidgeCVEncoder().fit(X, Y).coef_)
    monkeypatch.undo()
    np.testing.assert_array_equal(predicted, RidgeCVEncoder().cross_val_predict(X, Y, folds))
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "kernels").iterdir()) == ["full", "gram"]


def test_folds_in_any_index_form_and_one_target(tmp_path):
    X, (Y, *_), folds = _data()
    expected = RidgeCVEncoder().cross_val_predict(X, Y, folds)
    masks = [(np.isin(np.arange(len(X)), train), np.isin(np.arange(len(X)), test)) for train, test in folds]
    for store in (None, tmp_path / "kernels"):
        with kernel_store(store) if store else contextlib.nullcontext():
            for variant in ([(train[::-1], test[::-1]) for train, test in folds],  # reversed: not contiguous
                            [(train.tolist(), test.astype(np.int32)) for train, test in folds], masks):
                np.testing.assert_allclose(RidgeCVEncoder().cross_val_predict(X, Y, variant), expected,
                                           rtol=1e-10, atol=1e-10)
            single = RidgeCVEncoder().cross_val_predict(X, Y[:, 2], folds)
            assert single.shape == (len(X),)  # as predict gives for one target
            np.testing.assert_allclose(single, expected[:, 2], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="at least one"):
        RidgeCVEncoder().cross_val_predict(X, Y, [])


def test_folder_arguments_and_abandoned_staging(tmp_path, monkeypatch):
    import os
    import socket

    (tmp_path / "a_file").write_text("mine")
    for inside in ("", "sub/folder"):
        with pytest.raises(ValueError, match="a_file.* is a file"), kernel_store(tmp_path / "a_file" / inside):
            pass
    assert (tmp_path / "a_file").read_text() == "mine"
    with kernel_store(tmp_path / "new" / "kernels"):  # entering writes nothing
        assert not (tmp_path / "new").exists()
    for bad in ("", None, 3):
        with pytest.raises(ValueError, match="expected a folder path"), kernel_store(bad):
            pass
    monkeypatch.setenv("HOME", str(tmp_path))
    with kernel_store("~/kernels") as store:
        assert store.folder == tmp_path / "kernels"
    (tmp_path / "kernels").mkdir()
    host = socket.gethostname()
    dead, alive = (tmp_path / "kernels" / f".staging-{host}-{pid}-abc" for pid in (2**22 + 12345, os.getpid()))
    for staging in (dead, alive):
        staging.mkdir()
        (staging / "gram.npy").write_bytes(b"partial")
    with kernel_store(tmp_path / "kernels"):
        pass
    assert not dead.exists() and alive.exists()  # a running process's write is left alone


def test_the_torch_path_reads_and_writes_the_store(tmp_path, monkeypatch):
    """On CUDA the ridge runs in torch: its arrays go to the store as NumPy and come back as
    tensors. Here that code runs in torch on the CPU and must give the NumPy path's numbers."""
    X, (Y, *_), folds = _data()
    expected = RidgeCVEncoder().fit(X, Y), RidgeCVEncoder().cross_val_predict(X, Y, folds)
    real_init = _estimators._Arrays.__init__

    def on_torch(self, device=None):
        real_init(self, "cpu")
        self.on_torch = True

    monkeypatch.setattr(_estimators._Arrays, "__init__", on_torch)
    for _ in range(2):  # computed and written, then read
        with kernel_store(tmp_path / "kernels"):
            fit, predicted = RidgeCVEncoder().fit(X, Y), RidgeCVEncoder().cross_val_predict(X, Y, folds)
        np.testing.assert_array_equal(fit.alpha_, expected[0].alpha_)
        np.testing.assert_allclose(fit.coef_, expected[0].coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(predicted, expected[1], rtol=1e-8, atol=1e-8)
    assert len(list((tmp_path / "kernels").iterdir())) == 2 + len(folds)


def test_fits_at_once_decompose_each_kernel_once_and_a_dead_claim_is_taken_over(tmp_path, monkeypatch, counted):
    """Subjects fitted at the same time (here threads, each in its own block on one folder, as
    worker processes are) wait for the first one's entries instead of all decomposing them."""
    import os
    import threading
    import time

    X, subjects, folds = _data()
    real_eigh = _estimators._Arrays.eigh

    def slow_eigh(self, matrix):  # long enough for every thread to ask while the first computes
        time.sleep(0.5)
        return real_eigh(self, matrix)

    monkeypatch.setattr(_estimators._Arrays, "eigh", slow_eigh)
    expected = [RidgeCVEncoder().fit(X, Y).coef_ for Y in subjects]
    counted.update(gram=0, eigh=0)
    found = {}

    def subject(i):
        with kernel_store(tmp_path / "kernels"):
            found[i] = RidgeCVEncoder().fit(X, subjects[i]).coef_

    threads = [threading.Thread(target=subject, args=(i,)) for i in range(len(subjects))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted == {"gram": 1, "eigh": 1}  # one Gram pass and one decomposition for the three
    for i, coef in found.items():
        np.testing.assert_array_equal(coef, expected[i])
    assert not list((tmp_path / "kernels").glob(".computing-*"))  # every claim released
    # a claim left by a process that died (untouched for minutes) does not block the next fit
    with kernel_store(tmp_path / "first"):
        RidgeCVEncoder().fit(X, subjects[0])
    (tmp_path / "second").mkdir()
    for entry in (tmp_path / "first").iterdir():  # the same names: keys come from the data alone
        dead = tmp_path / "second" / f".computing-{entry.name}"
        dead.touch()
        os.utime(dead, (time.time() - 600, time.time() - 600))
    start = time.perf_counter()
    with kernel_store(tmp_path / "second"):
        taken_over = RidgeCVEncoder().fit(X, subjects[0])
    assert time.perf_counter() - start < 10  # not the minute a live claim is waited for
    np.testing.assert_array_equal(taken_over.coef_, expected[0])
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == sorted(p.name for p in (tmp_path / "first").iterdir())
