import numpy as np
import pytest
import torch

from brainprobe.models import load_model
from brainprobe.stimuli import sample_images
from brainprobe.synth import (
    Metamer,
    cross_model_recognition,
    fidelity_null,
    layer_fidelity,
    linear_gradient_applies,
    linear_gradient_relu,
)


@pytest.fixture(scope="module")
def photos():
    return sample_images(size=224)


def test_early_layer_metamers_pass_the_papers_tests(kaiming_alexnet, photos):
    null = fidelity_null(kaiming_alexnet, photos, ["conv1", "conv2"])
    metamer = Metamer(kaiming_alexnet, photos.images[:3], "conv1", linear_gradient=True, lr=0.05, stop_fidelity=0.97)
    metamer.synthesize(400, progress=False)
    assert (metamer.fidelity_ >= 0.95).all()
    verdict = metamer.acceptance(null, quantile=0.99)
    assert (verdict["fidelity"] > verdict["null_threshold"]).all()
    assert verdict["accepted"].all()
    # the network is feed-forward: a later layer matches too
    later = layer_fidelity(kaiming_alexnet, metamer.images, metamer.originals, ["conv2"])["fidelity"]
    assert (later > null.loc[null["layer"] == "conv2", "fidelity"].quantile(0.99)).all()


def test_per_image_stopping_and_frozen_results(kaiming_alexnet, photos):
    metamer = Metamer(kaiming_alexnet, photos.images[:4], "conv2", lr=0.01, stop_fidelity=0.95).synthesize(400, progress=False)
    assert metamer.n_iter_.min() < metamer.n_iter_.max()
    assert (metamer.fidelity_ >= 0.95).all()


def test_linear_gradient_relu_changes_only_the_backward_pass(kaiming_alexnet):
    images = torch.rand(2, 3, 224, 224, requires_grad=True)
    plain = kaiming_alexnet.layer_outputs(images, ["conv2"])["conv2"]
    (plain_grad,) = torch.autograd.grad(plain.sum(), images)
    with linear_gradient_relu(kaiming_alexnet, "conv2"):
        linear = kaiming_alexnet.layer_outputs(images, ["conv2"])["conv2"]
        (linear_grad,) = torch.autograd.grad(linear.sum(), images)
    assert torch.equal(plain, linear)
    assert not torch.allclose(plain_grad, linear_grad)
    # after the block the network is back to normal
    again = kaiming_alexnet.layer_outputs(images, ["conv2"])["conv2"]
    (again_grad,) = torch.autograd.grad(again.sum(), images)
    assert torch.equal(again_grad, plain_grad)
    with pytest.raises(ValueError, match="not a ReLU"):
        with linear_gradient_relu(kaiming_alexnet, "fc8"):
            pass


def test_cross_model_recognition_table(kaiming_alexnet, photos):
    other = load_model("alexnet", weights=None, seed=1, init="kaiming", device="cpu")
    metamer = Metamer(kaiming_alexnet, photos.images[:2], "conv1", linear_gradient=True, lr=0.05, stop_fidelity=0.95).synthesize(300, progress=False)
    table = cross_model_recognition({("alexnet", "conv1"): metamer}, {"self": kaiming_alexnet, "other": other})
    assert len(table) == 4 and set(table["recognizer"]) == {"self", "other"}
    assert table.loc[table["recognizer"] == "self", "same_class"].all()
    assert (table["chance"] == 1 / 1000).all()
    # against true labels: the generator's own labels of the originals are "true" here
    labels = kaiming_alexnet.predict(metamer.originals)
    labelled = cross_model_recognition({("alexnet", "conv1"): metamer}, {"self": kaiming_alexnet}, labels=labels)
    assert labelled["correct"].all() and labelled["original_correct"].all()
    wrong = cross_model_recognition({("alexnet", "conv1"): metamer}, {"self": kaiming_alexnet}, labels=(labels + 1) % 1000)
    assert not wrong["correct"].any()


def test_fidelity_null_uses_distinct_pairs(kaiming_alexnet, photos):
    null = fidelity_null(kaiming_alexnet, photos.images[:5], ["conv1"])
    assert len(null) == 10 and (null["fidelity"] < 0.99).all() and (null["first"] < null["second"]).all()
    assert np.isclose(layer_fidelity(kaiming_alexnet, photos.images[:2], photos.images[:2], ["conv1"])["fidelity"], 1).all()


def test_stopping_check_is_spearman_with_ties():
    from scipy.stats import spearmanr

    from brainprobe.synth._metamer import _centred_ranks, _spearman_to

    generator = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(3, 400, generator=generator))  # many tied zeros, as after a ReLU
    b = torch.relu(torch.randn(3, 400, generator=generator))
    a[0, :50] = 0.7  # and a tie among positive values
    ours = _spearman_to(a, _centred_ranks(b)).numpy()
    np.testing.assert_allclose(ours, [spearmanr(a[i], b[i])[0] for i in range(3)], atol=1e-10)


def test_linear_gradient_is_on_by_default_where_the_layer_is_a_relu(kaiming_alexnet, photos):
    assert Metamer(kaiming_alexnet, photos.images[:1], "conv2").linear_gradient
    assert not Metamer(kaiming_alexnet, photos.images[:1], "fc8").linear_gradient  # logits: no ReLU
    with pytest.raises(ValueError, match="not a ReLU"):
        Metamer(kaiming_alexnet, photos.images[:1], "fc8", linear_gradient=True)


def test_linear_gradient_through_a_functional_relu6(efficientnet):
    # EfficientNet's stem applies its ReLU6 as a function after the batch norm
    assert linear_gradient_applies(efficientnet, "stem") and not linear_gradient_applies(efficientnet, "block2")
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    plain = efficientnet.layer_outputs(images, ["stem"])["stem"]
    (plain_grad,) = torch.autograd.grad(plain.sum(), images)
    with linear_gradient_relu(efficientnet, "stem"):
        linear = efficientnet.layer_outputs(images, ["stem"])["stem"]
        before = efficientnet.layer_outputs(images, ["_bn0"])["_bn0"]
        (linear_grad,) = torch.autograd.grad(linear.sum(), images)
        (identity_grad,) = torch.autograd.grad(before.sum(), images)
    assert torch.equal(plain, linear) and not torch.allclose(plain_grad, linear_grad)
    torch.testing.assert_close(linear_grad, identity_grad)  # the ReLU6 passes the gradient unchanged
    assert efficientnet.resolve_layer("stem").post is not None and efficientnet.layers["stem"].post.__name__ == "_relu6"


def test_fidelity_null_ranks_each_image_once(kaiming_alexnet, photos):
    null = fidelity_null(kaiming_alexnet, photos.images[:6], ["conv1", "conv2"])
    assert null.attrs["n_pairs"] == 15 and len(null) == 30
    pair = null[(null["layer"] == "conv2")].iloc[3]
    direct = layer_fidelity(kaiming_alexnet, photos.images[[pair["first"]]], photos.images[[pair["second"]]], ["conv2"])
    assert pair["fidelity"] == pytest.approx(float(direct["fidelity"][0]), abs=1e-9)
    assert len(fidelity_null(kaiming_alexnet, photos.images[:6], ["conv1"], n_pairs=7)) == 7
    with pytest.raises(ValueError, match="distinct pairs"):
        fidelity_null(kaiming_alexnet, photos.images[:3], ["conv1"], n_pairs=4)


def test_the_progress_bar_shows_the_fidelity_it_waits_for(kaiming_alexnet, photos, capsys):
    Metamer(kaiming_alexnet, photos.images[:2], "conv1", lr=0.01, stop_fidelity=0.95).synthesize(3, progress=True)
    bar = capsys.readouterr().err
    assert "metamer: step " in bar and "of at most 3" in bar and "<" not in bar  # a ceiling, no ETA towards it
    assert "done 0/2" in bar and "lowest fidelity " in bar and "(each stops at 0.95)" in bar


def test_a_metamer_budget_too_small_for_the_class_test_says_so(kaiming_alexnet, photos):
    # one step from noise cannot give 6 photos' classes back: the result must say it is not a metamer yet
    originals = photos.images[:6]
    with pytest.warns(UserWarning, match="not given their original's class after 1 steps"):
        metamer = Metamer(kaiming_alexnet, originals, "fc8").synthesize(1, progress=False)
    expected = kaiming_alexnet.predict(metamer.images) == kaiming_alexnet.predict(originals)
    np.testing.assert_array_equal(metamer.same_class_, expected)
    assert not expected.all()
