"""Support recovery of ROMP against OMP on the issue's planted problem (not a timing benchmark).

40 samples, 5000 Gaussian features, 3 true features per target, noise SD 0.01, s = 3. A target
counts as recovered when its support (at most 2s atoms for ROMP; 2s or s atoms for OMP) holds
all three true features. Weight designs: ``flat`` (all +1, the test signals of Needell &
Vershynin 2009), ``signs`` (+-1), ``uniform`` (magnitudes 1 to 2, random signs: the test suite's
design) and ``gaussian`` (N(0, 1)). ROMP runs with and without an intercept.

The issue asks ROMP for 80% here; this script is how the gap was measured.

Usage:  .venv/bin/python benchmarks/romp_recovery.py [--seeds 10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import write_report
from sklearn.linear_model import orthogonal_mp

from brainprobe.encoding import romp_batched

N_SAMPLES, N_FEATURES, N_TRUE, S, N_TARGETS, NOISE = 40, 5000, 3, 3, 100, 0.01
DESIGNS = ("flat", "signs", "uniform", "gaussian")


def weights(design: str, rng: np.random.Generator) -> np.ndarray:
    if design == "flat":
        return np.ones(N_TRUE)
    if design == "signs":
        return rng.choice([-1.0, 1.0], N_TRUE)
    if design == "uniform":
        return rng.uniform(1, 2, N_TRUE) * rng.choice([-1.0, 1.0], N_TRUE)
    return rng.normal(size=N_TRUE)


def planted(design: str, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    truth = [rng.choice(N_FEATURES, N_TRUE, replace=False) for _ in range(N_TARGETS)]
    W = np.zeros((N_FEATURES, N_TARGETS))
    for target, index in enumerate(truth):
        W[index, target] = weights(design, rng)
    return X, X @ W + NOISE * rng.normal(size=(N_SAMPLES, N_TARGETS)), truth


def rate(supports, truth) -> float:
    return float(np.mean([set(t) <= set(np.asarray(s).tolist()) for t, s in zip(truth, supports, strict=True)]))


def omp_supports(X, Y, n_atoms):
    Xc = X - X.mean(axis=0)
    coef = orthogonal_mp(Xc / np.linalg.norm(Xc, axis=0), Y - Y.mean(axis=0), n_nonzero_coefs=n_atoms)
    return [np.flatnonzero(coef[:, t]) for t in range(Y.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "romp_recovery.json"))
    args = parser.parse_args()
    methods = {
        "romp": lambda X, Y: romp_batched(X, Y, S).support,
        "romp_no_intercept": lambda X, Y: romp_batched(X, Y, S, fit_intercept=False).support,
        "omp_2s_atoms": lambda X, Y: omp_supports(X, Y, 2 * S),
        "omp_s_atoms": lambda X, Y: omp_supports(X, Y, S),
    }
    table = {}
    print(f"recovery of {N_TRUE} true features among {N_FEATURES}, {N_SAMPLES} samples, "
          f"{args.seeds} seeds x {N_TARGETS} targets")
    print(f"{'design':10s}" + "".join(f"{name:>20s}" for name in methods))
    for design in DESIGNS:
        problems = [planted(design, seed) for seed in range(args.seeds)]
        table[design] = {name: float(np.mean([rate(fit(X, Y), truth) for X, Y, truth in problems]))
                         for name, fit in methods.items()}
        print(f"{design:10s}" + "".join(f"{table[design][name]:20.3f}" for name in methods))
    write_report({"n_samples": N_SAMPLES, "n_features": N_FEATURES, "n_true": N_TRUE, "s": S,
                  "n_targets": N_TARGETS, "noise_sd": NOISE, "seeds": args.seeds, "goal_romp": 0.8,
                  "recovery": table}, args.out)


if __name__ == "__main__":
    main()
