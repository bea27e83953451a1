"""Metamer synthesis speed: brainprobe's batched metamers against plenoptic's `Metamer`.

Same network (AlexNet, random He-initialized weights: no ImageNet weights offline), same layer
(conv2), same 16 images, same starting noise, Adam with lr 0.01, the same budget of 200
iterations. brainprobe optimizes all 16 images in one batch and stops each one when its Spearman
fidelity at the layer reaches 0.95; plenoptic (installed in this benchmark's environment only,
`make bench-synth`) runs one image at a time with its default convergence check. Both are
scored by the same Spearman fidelity.

Usage:  .venv-bench/bin/python benchmarks/bench_synth.py [--budget 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import device_description, timed, write_report
from torch import nn

from brainprobe.models import load_model
from brainprobe.stimuli import sample_images
from brainprobe.synth import Metamer, layer_fidelity

LAYER, N_IMAGES, STOP = "conv2", 16, 0.95


class LayerOutput(nn.Module):
    """One layer of a LayeredModel as a plain module (what plenoptic expects)."""

    def __init__(self, model, layer):
        super().__init__()
        self.model, self.layer = model, layer

    def forward(self, images):
        return self.model.layer_outputs(images, [self.layer], validate=False)[self.layer]


def images16() -> torch.Tensor:
    base = sample_images(size=224).images
    return torch.cat([base, base.flip(-1)])[:N_IMAGES]




def run_plenoptic(model, images, starts, budget):
    import plenoptic as po

    module = LayerOutput(model, LAYER).eval()
    results = []
    for image, start in zip(images, starts, strict=True):
        metamer = po.Metamer(image[None].to(model.device), module)
        metamer.setup(initial_image=start[None].to(model.device), optimizer_kwargs={"lr": 0.01})
        metamer.synthesize(max_iter=budget)
        results.append(metamer.metamer.detach().cpu()[0].clamp(0, 1))
    return torch.stack(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth.json"))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model("alexnet", weights=None, seed=0, init="kaiming", device=device)
    images = images16()
    # plenoptic has no linear-gradient ReLU: compare the same objective and gradients
    ours_obj = Metamer(model, images, LAYER, lr=0.01, stop_fidelity=STOP, seed=0, linear_gradient=False)
    _, ours_s = timed(lambda: ours_obj.synthesize(args.budget, progress=False))
    theirs, theirs_s = timed(lambda: run_plenoptic(model, images, ours_obj.start, args.budget))
    theirs_fidelity = layer_fidelity(model, theirs, images, [LAYER])["fidelity"].to_numpy()
    report = {
        "device": device_description(device),
        "n_images": N_IMAGES, "layer": LAYER, "budget": args.budget, "stop_fidelity": STOP,
        "brainprobe_s": ours_s, "plenoptic_s": theirs_s,
        "brainprobe_s_per_image": ours_s / N_IMAGES, "plenoptic_s_per_image": theirs_s / N_IMAGES,
        "speedup": theirs_s / ours_s, "goal_speedup": 5,
        "brainprobe_fidelity_mean": float(np.mean(ours_obj.fidelity_)),
        "brainprobe_fidelity_min": float(np.min(ours_obj.fidelity_)),
        "plenoptic_fidelity_mean": float(np.mean(theirs_fidelity)),
        "plenoptic_fidelity_min": float(np.min(theirs_fidelity)),
        "brainprobe_mean_iterations": float(np.mean(ours_obj.n_iter_)),
    }
    print(f"device: {report['device']}")
    print(f"{N_IMAGES} metamers of AlexNet {LAYER}, budget {args.budget} Adam steps")
    print(f"    brainprobe (batched, per-image stop at rho >= {STOP}) {ours_s:7.1f} s  "
          f"{report['brainprobe_s_per_image']:.2f} s/image  fidelity {report['brainprobe_fidelity_mean']:.3f} "
          f"(min {report['brainprobe_fidelity_min']:.3f}), {report['brainprobe_mean_iterations']:.0f} steps")
    print(f"    plenoptic  (one image at a time)                 {theirs_s:7.1f} s  "
          f"{report['plenoptic_s_per_image']:.2f} s/image  fidelity {report['plenoptic_fidelity_mean']:.3f} "
          f"(min {report['plenoptic_fidelity_min']:.3f})")
    print(f"    speedup {report['speedup']:.1f}x (goal >= 5x)")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
