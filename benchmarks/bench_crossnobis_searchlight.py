"""Crossnobis searchlight: every centre's RDM from one sparse product against a loop of `rdm` calls.

Haxby-like design: 12 runs x 8 conditions (96 trials), 2,000 voxels, 2,000 spheres of 30 voxels
(random members: the timing does not depend on geometry). The loop runs over the first 200
centres and is scaled to all of them; both give the same RDMs (max difference reported).

Usage:  python benchmarks/bench_crossnobis_searchlight.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _common import timed, write_report

from brainprobe.rsa import rdm, searchlight_rdms

N_RUNS, N_CONDITIONS, N_VOXELS, N_CENTRES, SIZE, N_LOOP = 12, 8, 2000, 2000, 30, 200


def main() -> None:
    rng = np.random.default_rng(0)
    runs = np.repeat(np.arange(N_RUNS), N_CONDITIONS)
    conditions = np.tile([f"c{k}" for k in range(N_CONDITIONS)], N_RUNS)
    betas = rng.normal(size=(len(runs), N_VOXELS))
    members = [np.sort(rng.choice(N_VOXELS, SIZE, replace=False)) for _ in range(N_CENTRES)]
    spheres = sp.csr_matrix((np.ones(N_CENTRES * SIZE), np.concatenate(members), np.arange(N_CENTRES + 1) * SIZE),
                            shape=(N_CENTRES, N_VOXELS))
    maps, sparse_s = timed(lambda: searchlight_rdms(betas, spheres, "crossnobis", runs=runs, conditions=conditions))
    loop, loop_s = timed(lambda: np.stack([rdm(betas[:, m], "crossnobis", runs=runs, conditions=conditions)
                                           for m in members[:N_LOOP]]))
    loop_all_s = loop_s * N_CENTRES / N_LOOP
    report = {"design": f"{N_RUNS} runs x {N_CONDITIONS} conditions, {N_VOXELS} voxels, {N_CENTRES} spheres of {SIZE}",
              "sparse_seconds": sparse_s, "loop_seconds_scaled": loop_all_s, "speedup": loop_all_s / sparse_s,
              "max_abs_difference": float(np.abs(maps[:N_LOOP] - loop).max())}
    print(report)
    write_report(report, Path(__file__).parent / "results" / "crossnobis_searchlight.json")


if __name__ == "__main__":
    main()
