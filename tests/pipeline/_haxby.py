"""Haxby et al. (2001) subject 1, one slice, 12 runs (PyMVPA's copy, CC BY-SA 3.0): a volume data
set no one here wrote. `haxby_betas` makes one beta map per run and category with nilearn's GLM:
the recipe a user would follow for block-design data."""

from pathlib import Path

import numpy as np
import pandas as pd

HAXBY = Path(__file__).resolve().parent / "haxby"
CATEGORIES = ("face", "house", "cat", "bottle", "scissors", "shoe", "chair", "scrambledpix")
TR = 2.5


def haxby_betas(folder: Path) -> dict:
    """Write ``betas.nii.gz`` (one volume per run x category), ``trials.csv`` and return the paths.

    Each run's BOLD is fitted separately (FirstLevelModel: SPM HRF, cosine drift, no smoothing,
    the subject's mask); the effect size of each category's block is that run's beta.
    """
    import nibabel as nib
    from nilearn.glm.first_level import FirstLevelModel

    folder.mkdir(parents=True, exist_ok=True)
    mask = HAXBY / "sub-01_mask.nii.gz"
    maps, rows = [], []
    for run in range(1, 13):
        bold = HAXBY / f"sub-01_task-objectviewing_run-{run:02d}_bold.nii.gz"
        events = pd.read_csv(HAXBY / f"sub-01_task-objectviewing_run-{run:02d}_events.tsv", sep="\t")
        model = FirstLevelModel(t_r=TR, hrf_model="spm", drift_model="cosine", mask_img=str(mask), smoothing_fwhm=None,
                                minimize_memory=True)
        model.fit(str(bold), events=events)
        for category in CATEGORIES:
            maps.append(np.asarray(model.compute_contrast(category, output_type="effect_size").dataobj))
            rows.append({"image_id": category, "run": run, "repeat": run,
                         "animacy": "animate" if category in ("face", "cat") else "inanimate"})
    affine = nib.load(str(mask)).affine
    betas = folder / "betas.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(maps, axis=-1).astype(np.float64), affine), betas)
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    return {"betas": betas, "trials": folder / "trials.csv", "mask": mask}
