"""Study values shared by test folders (importable: tests/conftest.py puts tests/ on the path)."""

# The smallest study that still exercises every step: 4 photos, a He-initialized AlexNet
# (random weights, see issue 3), two simulated subjects on the ROI vertices of fs_LR 32k.
TINY = {
    "study": {"name": "tiny", "seed": 3},
    "stimuli": {"n_images": 5, "max_iter": 15},
    "network": {"name": "alexnet", "weights": "random", "init": "kaiming", "layers": ["conv4", "conv5", "fc6", "fc7"],
                "device": "cpu"},
    "subjects": {"simulate": 2, "vertices": "rois", "snr": 2.0},
    "rois": {"names": ["V1", "LO"]},
    "selection": {"n_per_hemi": 30},
    "rsa": {"n_perm": 60, "n_boot": 20},
    "encoding": {"n_nonzero": 2, "n_perm": 60, "n_boot": 20},
    "best_layer": {"cv": 5},
    "figures": {"formats": ["png"], "dpi": 60},
}


def write_photos(folder, names=("a", "b", "c"), *, seed: int = 0):
    """A user's image folder: small random RGB photos (40 x 50 px PNG) named ``names``; returns it."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def kinds_table(n: int):
    """The trial-free stimulus table of ``n`` RE images with one AN and one AI image each (rows
    RE, then AN, then AI; ``source_id`` names the RE image)."""
    import pandas as pd

    kinds = ["RE", "AN", "AI"]
    return pd.DataFrame({"image_id": [f"{k}_{i}" for k in kinds for i in range(n)],
                         "kind": [k for k in kinds for _ in range(n)],
                         "source_id": [f"RE_{i}" for _ in kinds for i in range(n)]})
