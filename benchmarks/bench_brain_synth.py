"""Speed of encoding-model-driven synthesis: 16 ROI-maximizing images, batched vs one at a time.

A small random conv net (3 conv layers, 64 px) and a ROMP encoding model of 100 simulated
vertices that read 3 units each of its conv3 layer, fitted on 80 natural patches of the bundled
photographs. `ROIMaximization` drives the ROI's predicted response to ``target_z`` natural-image
standard deviations above the natural mean: once for all 16 images in one batch (each image
leaves the batch when it reaches the target: per-image stopping), once for each image alone
from the same starting noise. Both runs take the same steps per image; the report gives images
per second, the steps each image took and the final z.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_brain_synth.py [--target-z 120] [--max-iter 300]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import device_description, timed, write_report
from torch import nn

from brainprobe.encoding import ROMP, EncodingModule
from brainprobe.models import LayeredModel, extract
from brainprobe.stimuli import sample_patches
from brainprobe.synth import ROIMaximization

SIZE, N_TRAIN, N_IMAGES, N_VERTICES = 64, 80, 16, 100


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.ReLU(),
                                      nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


def roi_model(device) -> tuple[dict, torch.Tensor]:
    torch.manual_seed(0)
    network = LayeredModel(SmallNet(), {"conv3": "features.5"}, input_size=SIZE, name="small").to(device)
    images = sample_patches(N_TRAIN, size=SIZE, photo_size=192, crop=96, seed=0)
    features = extract(network, images, ["conv3"], device=device)["conv3"].astype(np.float64)
    rng = np.random.default_rng(0)
    usable = np.flatnonzero(features.std(axis=0) > 0)
    standardized = (features[:, usable] - features[:, usable].mean(0)) / features[:, usable].std(0)
    support = np.stack([rng.choice(len(usable), 3, replace=False) for _ in range(N_VERTICES)])
    signal = np.einsum("isk,sk->is", standardized[:, support], rng.normal(size=support.shape))
    responses = signal / signal.std(0) + 0.5 * rng.normal(size=signal.shape)
    estimator = ROMP(n_nonzero=3).fit(features, responses)
    return {"ROI": EncodingModule.from_estimator(network, "conv3", estimator, name="ROI")}, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-z", type=float, default=120.0)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "brain_synth.json"))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models, natural = roi_model(device)
    options = {"target_z": args.target_z, "null_images": natural, "lr": 0.02}
    batched = ROIMaximization(models, "ROI", n_images=N_IMAGES, **options)
    starts = batched.start.clone()
    _, batched_seconds = timed(lambda: batched.synthesize(args.max_iter, progress=False, device=device))
    singles, single_seconds = [], 0.0
    for image in starts:
        one = ROIMaximization(models, "ROI", n_images=1, **options)
        one.start = image[None].clone()
        _, seconds = timed(lambda one=one: one.synthesize(args.max_iter, progress=False, device=device))
        singles.append(one)
        single_seconds += seconds
    z_batched = batched.responses_.query("set == 'synthesized'")["z"].to_numpy()
    z_single = np.concatenate([s.responses_.query("set == 'synthesized'")["z"].to_numpy() for s in singles])
    steps_single = np.concatenate([s.n_iter for s in singles])
    report = {
        "device": device_description(device),
        "network": "3-layer conv net, random weights, 64 px; ROMP model of 100 vertices on conv3",
        "n_images": N_IMAGES, "target_z": args.target_z, "max_iter": args.max_iter,
        "batched": {"seconds": batched_seconds, "images_per_second": N_IMAGES / batched_seconds,
                    "converged": int(batched.converged.sum()), "steps_min": int(batched.n_iter.min()),
                    "steps_max": int(batched.n_iter.max()), "steps_mean": float(batched.n_iter.mean()),
                    "z_mean": float(z_batched.mean())},
        "one_at_a_time": {"seconds": single_seconds, "images_per_second": N_IMAGES / single_seconds,
                          "converged": int(sum(bool(s.converged[0]) for s in singles)),
                          "steps_min": int(steps_single.min()), "steps_max": int(steps_single.max()),
                          "steps_mean": float(steps_single.mean()), "z_mean": float(z_single.mean())},
    }
    report["speedup_batched_over_one_at_a_time"] = single_seconds / batched_seconds
    print(f"{report['device']}: batched {report['batched']['images_per_second']:.2f} images/s, one at a time "
          f"{report['one_at_a_time']['images_per_second']:.2f} images/s, ratio {report['speedup_batched_over_one_at_a_time']:.2f}x; "
          f"steps per image {report['batched']['steps_min']}-{report['batched']['steps_max']} (batched), "
          f"{report['one_at_a_time']['steps_min']}-{report['one_at_a_time']['steps_max']} (alone)")
    write_report(report, args.output)


if __name__ == "__main__":
    main()
