"""RE screening (`[stimuli] re_threshold`): raise, drop or keep the images below it."""

import pytest

from brainprobe.models import load_model
from brainprobe.pipeline._steps import screen_regular_images
from brainprobe.stimuli import sample_images


@pytest.fixture(scope="module")
def unsure():
    # a random network is confident about no photo: every image falls below 0.99
    return load_model("alexnet", weights=None, device="cpu"), sample_images(4, size=64)


def test_keep_runs_with_every_image_and_names_those_below(unsure):
    model, photos = unsure
    with pytest.warns(UserWarning, match=r"re_threshold = 0.99: 4 of 4 RE images are classified below it: .*; kept"):
        kept = screen_regular_images(model, photos, 0.99, "keep")
    assert kept.image_ids == photos.image_ids


def test_drop_and_raise_refuse_when_nothing_would_be_left(unsure):
    model, photos = unsure
    with pytest.raises(ValueError, match=r"no RE image would be left \(on_low_confidence = \"keep\" keeps them\)"):
        screen_regular_images(model, photos, 0.99, "drop")
    with pytest.raises(ValueError, match=r"replace them, lower re_threshold"):
        screen_regular_images(model, photos, 0.99, "raise")
    assert screen_regular_images(model, photos, 0.0, "raise") is photos  # no threshold: nothing screened
