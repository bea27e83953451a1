"""Permutation p-values: never below what the data allow, exact when every relabeling is used."""

import itertools
import math

import numpy as np
import pytest

from brainprobe._internal import (
    fwe_from_null_maxima,
    is_complete_enumeration,
    p_from_null,
    permutation_set,
)
from brainprobe.stats import accuracy_permutation_test, rdm_permutation_test


def _rdm(x):
    x = x - x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return (1 - x @ x.T)[np.triu_indices(len(x), 1)]


def test_few_items_are_enumerated_many_are_sampled():
    perms, exact = permutation_set(5, 1000, seed=0)
    assert exact and perms.shape == (120, 5) and is_complete_enumeration(perms)
    perms, exact = permutation_set(7, 1000, seed=0)  # 7! = 5040 > 1000
    assert not exact and perms.shape == (1000, 7) and not is_complete_enumeration(perms)


def test_rdm_test_with_four_items_is_exact():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 50))
    result = rdm_permutation_test(_rdm(base), _rdm(base + 0.01 * rng.normal(size=base.shape)), n_perm=1000, seed=1)
    assert result.exact and result.null.shape == (1, 24)
    # brute force: the statistic under each of the 24 relabelings, the identity included
    a = _rdm(base)
    b_patterns = base + 0.01 * np.random.default_rng(0).normal(size=base.shape)
    expected = []
    for perm in itertools.permutations(range(4)):
        b = _rdm(b_patterns[list(perm)])
        expected.append(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])
    assert result.p[0] >= 1 / 24
    assert result.p[0] == pytest.approx(np.mean(np.array(expected) >= result.observed[0] - 1e-9))


def test_the_identity_always_counts_despite_rounding():
    observed = np.array([0.3])
    twin = 0.3 + 1e-15  # the identity relabeling computed in another summation order
    assert p_from_null(observed, np.array([[twin, 0.1]]), exact=True)[0] == 0.5
    assert p_from_null(observed, np.array([[0.3 - 1e-15, 0.1]]), "less", exact=True)[0] == 1.0
    assert p_from_null(observed, np.array([[0.1, 0.2]]))[0] == pytest.approx(1 / 3)  # sampled: (1 + 0) / (1 + 2)


def test_accuracy_permutation_with_few_images_is_exact():
    rng = np.random.default_rng(2)
    measured = rng.normal(size=(5, 30))
    _, null, p = accuracy_permutation_test(measured + 0.1 * rng.normal(size=measured.shape), measured, n_perm=1000)
    assert len(null) == math.factorial(5) and p == pytest.approx(1 / 120)


def test_fwe_with_the_complete_enumeration():
    maxima = np.array([0.9, 0.5, 0.2, 0.1])  # the identity's maximum is among them
    assert fwe_from_null_maxima(np.array([0.9]), maxima, exact=True)[0] == pytest.approx(1 / 4)
    assert fwe_from_null_maxima(np.array([0.9]), maxima)[0] == pytest.approx(2 / 5)
