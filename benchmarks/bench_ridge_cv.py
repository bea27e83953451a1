"""Per-vertex ridge (RidgeCVEncoder) beside scikit-learn's RidgeCV(alpha_per_target=True), same
penalties, same answer: encoding-model sizes (images x layer units x vertices).

With more images than units (NSD-like: thousands of images, a few hundred or thousand units) the
encoder works in the (units x units) covariance; ``kernel_route_s`` times the (images x images)
kernel it used before, on sizes where that takes minutes rather than hours.

    PYTHONPATH=src python benchmarks/bench_ridge_cv.py [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import timed, write_report
from sklearn.linear_model import RidgeCV

from brainprobe.encoding import RidgeCVEncoder


def _kernel_route(X, Y) -> float:
    """Seconds of the same fit forced through the (images x images) kernel's eigenbasis."""
    from brainprobe.encoding import _estimators

    def kernel_basis(X, x_mean):
        Xc = X - x_mean
        eigenvalues, Q = np.linalg.eigh(Xc @ Xc.T)
        return np.clip(eigenvalues, 0.0, None), Q

    original = _estimators._kernel_eigenbasis
    _estimators._kernel_eigenbasis = kernel_basis
    try:
        return timed(lambda: RidgeCVEncoder().fit(X, Y))[1]
    finally:
        _estimators._kernel_eigenbasis = original


def one_size(n_images: int, n_units: int, n_vertices: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_images, n_units))
    Y = X[:, :50] @ rng.normal(size=(50, n_vertices)) + 5 * rng.normal(size=(n_images, n_vertices))
    ours, ours_s = timed(lambda: RidgeCVEncoder().fit(X, Y))
    centred = X - X.mean(axis=0)
    alphas = np.asarray(ours.alphas) * np.trace(centred @ centred.T) / n_images
    theirs, theirs_s = timed(lambda: RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y))
    row = {"n_images": n_images, "n_units": n_units, "n_vertices": n_vertices, "brainprobe_s": ours_s,
           "sklearn_s": theirs_s, "speedup": theirs_s / ours_s,
           "max_coef_difference": float(np.abs(ours.coef_ - theirs.coef_).max())}
    if n_units < n_images <= 4000:
        row["kernel_route_s"] = _kernel_route(X, Y)
        row["speedup_vs_kernel_route"] = row["kernel_route_s"] / ours_s
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "ridge_cv.json")
    args = parser.parse_args()
    sizes = [(100, 2000, 500)] if args.quick else [(100, 2000, 500), (200, 10000, 2000), (500, 4000, 5000),
                                                   (4000, 512, 2000), (10000, 512, 2000), (10000, 4096, 2000)]
    rows = []
    for size in sizes:
        row = one_size(*size)
        rows.append(row)
        print(f"{row['n_images']} images x {row['n_units']} units x {row['n_vertices']} vertices: brainprobe "
              f"{row['brainprobe_s']:.2f} s, scikit-learn {row['sklearn_s']:.2f} s ({row['speedup']:.1f}x), "
              f"max |coef difference| {row['max_coef_difference']:.1e}")
        if "kernel_route_s" in row:
            print(f"  the (images x images) kernel route: {row['kernel_route_s']:.2f} s "
                  f"({row['speedup_vs_kernel_route']:.1f}x slower)")
    write_report({"benchmark": "per-vertex ridge penalty by leave-one-out", "sizes": rows}, args.out)


if __name__ == "__main__":
    main()
