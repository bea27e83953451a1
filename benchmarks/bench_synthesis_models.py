"""The synthesis step's encoding models: refitted (before issue 23 item 5) against read from the
encoding step's cached fit with its held-out folds (now).

Runs a small simulated study (AlexNet with random He-initialized weights, 12 images per kind, two
subjects, V1 and LO, ROMP s = 2, 5-fold held-out accuracy, best layer on RE) with synthesis on,
then times, in the same process and alternating, the synthesis step's model part both ways:
``_roi_models`` fitting the models and their folds itself, and ``_roi_models`` on the cached
`EncodingModels` (loaded from the study's cache). Both give the same modules (checked here);
ROMP fits are counted. Writes benchmarks/results/synthesis_models.json.

    python benchmarks/bench_synthesis_models.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_report

from brainprobe.data import Responses
from brainprobe.encoding import ROMP, EncodingModels
from brainprobe.models import Activations
from brainprobe.pipeline import Study, _synthesis, validate


def _config(folder: Path) -> dict:
    return {
        "study": {"name": "synthesis-models", "seed": 3, "output": str(folder / "study")},
        "stimuli": {"n_images": 12, "max_iter": 15},
        "network": {"name": "alexnet", "weights": "random", "init": "kaiming",
                    "layers": ["conv4", "conv5", "fc6", "fc7"], "device": "cpu"},
        "subjects": {"simulate": 2, "vertices": "rois", "snr": 2.0},
        "rois": {"names": ["V1", "LO"]},
        "selection": {"n_per_hemi": 30},
        "rsa": {"n_perm": 60, "n_boot": 20},
        "searchlight": {"enabled": False},
        "encoding": {"n_nonzero": 2, "n_perm": 60, "n_boot": 20},
        "best_layer": {"cv": 5, "on": ["RE", "AN", "AI"]},
        "synthesis": {"enabled": True, "n_images": 1, "objectives": ["drive"], "max_iter": 5},
        "figures": {"formats": ["png"], "dpi": 60},
    }


def _cached(output: Path, step: str, label: str, name: str) -> Path:
    for folder in (output / ".cache" / step).iterdir():
        done = folder / "complete.json"
        if done.is_file() and json.loads(done.read_text())["label"] == label:
            return folder / name
    raise FileNotFoundError(f"no cached {step} for {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    fits = collections.Counter()
    real_fit = ROMP.fit

    def counted(self, X, y):
        fits["n"] += 1
        return real_fit(self, X, y)

    ROMP.fit = counted
    with tempfile.TemporaryDirectory() as folder:
        os.environ["BRAINPROBE_CACHE"] = str(Path(folder) / "cache")
        study = Study(validate(_config(Path(folder))), progress=False, n_jobs=1)
        result = study.run()
        steps = result.log.groupby("step", sort=False)["seconds"].sum().round(3).to_dict()
        output = result.output
        models_path = _cached(output, "encoding_models", "sub-01", "models.npz")
        responses = Responses.load(_cached(output, "responses", "sub-01", "responses.npz"))
        activations = Activations.load(next((output / ".cache" / "activations").glob("*/activations.npz")))
        selection = result.tables["selection"].query("subject == 'sub-01'")
        network = study._model(study.config.networks[0])

        def refit():
            return _synthesis._roi_models(network, activations, activations.layers, responses, selection, study.config)

        def shared():
            return _synthesis._roi_models(network, activations, activations.layers, responses, selection, study.config,
                                          EncodingModels.load(models_path))

        seconds: dict[str, list] = {"refit": [], "shared": []}
        n_fits = {}
        modules = {}
        for _ in range(args.repeats):
            for name, run in (("refit", refit), ("shared", shared)):
                before = fits["n"]
                start = time.perf_counter()
                modules[name] = run()
                seconds[name].append(time.perf_counter() - start)
                n_fits[name] = fits["n"] - before
    for roi, module in modules["refit"].items():
        other = modules["shared"][roi]
        assert (module.layer, module.accuracy, module.accuracy_null) == (other.layer, other.accuracy, other.accuracy_null)
        assert np.array_equal(module.weight.numpy(), other.weight.numpy())
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"synthesis step (shared models): {steps['synthesis']:.1f} s; encoding_models step: "
          f"{steps['encoding_models']:.2f} s")
    for name in ("refit", "shared"):
        print(f"  models of the synthesis step, {name:<6}: median {medians[name]:.3f} s over {args.repeats} "
              f"({n_fits[name]} ROMP fits)")
    write_report({"study": "12 images per kind, 2 subjects, V1 + LO, AlexNet conv4..fc7, ROMP s=2, cv=5",
                  "steps_seconds": steps, "roi_models_seconds": seconds, "roi_models_median_seconds": medians,
                  "romp_fits": n_fits, "speedup": medians["refit"] / medians["shared"],
                  "note": "the same modules both ways (checked); timings on shared, loaded cores"},
                 Path(__file__).parent / "results" / "synthesis_models.json")


if __name__ == "__main__":
    main()
