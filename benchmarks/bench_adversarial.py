"""AN / AI generation speed: the batched generator against a one-image-at-a-time loop.

Both run the same optimizer update on the same images with the same stopping rule
(p(target) >= 0.99 on the 8-bit image); the loop calls the generator with batch_size=1.
40 RE images (the 12 bundled photographs with flips and rotations) give 40 AN + 40 AI.

Networks: AlexNet (random weights with He init: this machine has no AlexNet ImageNet weights;
the default torchvision init leaves every class near p = 1/1000 and cannot be attacked) and
the ImageNet-trained EfficientNet-Lite0 that ships in the demo extra.

Usage:  python benchmarks/bench_adversarial.py [--models alexnet,efficientnet_lite0] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from _common import device_description, timed

from brainprobe.adversarial import interference_images, noise_images, true_classes
from brainprobe.models import load_model, resolve_device
from brainprobe.stimuli import StimulusSet, sample_images

N_IMAGES = 40


def regular_images(n: int = N_IMAGES) -> StimulusSet:
    base = sample_images(size=224)
    variants = [base.images, base.images.flip(-1), base.images.flip(-2), base.images.rot90(1, (-2, -1))]
    images = torch.cat(variants)[:n]
    ids = [f"{name}_{v}" for v in range(len(variants)) for name in base.image_ids][:n]
    return StimulusSet(images, {"image_id": ids})






def bench_model(name: str, device: torch.device, max_iter: int) -> dict:
    if name == "alexnet":
        model = load_model("alexnet", weights=None, seed=0, init="kaiming", device=device)
    else:
        model = load_model(name, weights="imagenet", device=device)
    regular = regular_images()
    an_targets = true_classes(model, regular)
    common = {"max_iter": max_iter, "device": device, "progress": False}
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failures are counted below
        # batched: the generator's default batch size for the device (64 on CUDA, 8 on CPU)
        for label, batch_size in (("batched", None), ("one_at_a_time", 1)):
            (an, ai), seconds = timed(lambda b=batch_size: (
                noise_images(model, an_targets, batch_size=b, **common),
                interference_images(model, regular, "random", seed=0, batch_size=b, **common),
            ))
            runs[label] = {
                "seconds": seconds,
                "images_per_second": 2 * N_IMAGES / seconds,
                "success_an": float(an.table["success"].mean()),
                "success_ai": float(ai.table["success"].mean()),
                "mean_iterations_an": float(an.table["n_iter"].mean()),
                "mean_iterations_ai": float(ai.table["n_iter"].mean()),
                "mean_psnr_ai": float(ai.table["psnr"].mean()),
            }
    runs["speedup"] = runs["one_at_a_time"]["seconds"] / runs["batched"]["seconds"]
    runs["weights"] = model.weights_source
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="alexnet,efficientnet_lite0")
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "adversarial.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    report = {"device": device_description(device), "torch": torch.__version__, "n_an": N_IMAGES, "n_ai": N_IMAGES,
              "goal_speedup_gpu": 10, "models": {}}
    print(f"device: {report['device']}")
    for name in args.models.split(","):
        result = report["models"][name] = bench_model(name, device, args.max_iter)
        for label in ("batched", "one_at_a_time"):
            r = result[label]
            print(f"{name:<20} {label:<14} {r['seconds']:8.1f} s  {r['images_per_second']:6.2f} img/s  "
                  f"success AN {r['success_an']:.0%} AI {r['success_ai']:.0%}  iterations AN {r['mean_iterations_an']:.1f} "
                  f"AI {r['mean_iterations_ai']:.1f}  PSNR AI {r['mean_psnr_ai']:.1f} dB")
        print(f"{name:<20} speedup {result['speedup']:.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.is_file() else {}
    existing[device.type] = report  # keep CPU and GPU runs side by side
    out.write_text(json.dumps(existing, indent=2, default=float))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
