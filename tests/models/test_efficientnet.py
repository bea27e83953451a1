"""The real ImageNet-trained network that ships offline (demo extra)."""

import numpy as np
import torch

from brainprobe.models import extract


def _chelsea():
    skimage_data = __import__("pytest").importorskip("skimage.data")
    image = skimage_data.chelsea().astype(np.float32) / 255.0
    return torch.from_numpy(image).permute(2, 0, 1)[None]


CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_chelsea_is_a_cat_in_the_top5(efficientnet):
    proba = efficientnet.predict_proba(_chelsea())[0]
    top5 = set(np.argsort(proba)[::-1][:5].tolist())
    assert top5 & CAT_CLASSES, [efficientnet.class_name(i) for i in top5]
    assert int(proba.argmax()) in CAT_CLASSES


def test_efficientnet_layers_are_ordered_and_extractable(efficientnet):
    acts = extract(efficientnet, _chelsea(), device="cpu")
    assert list(acts) == [n for n in efficientnet.layer_names if n != "prob"]  # as a study: no softmax
    acts = extract(efficientnet, _chelsea(), efficientnet.layer_names, device="cpu")
    assert acts.shapes["stem"] == (32, 112, 112)
    assert acts.shapes["block7"] == (320, 7, 7)
    assert acts["stem"].min() >= 0 and acts["stem"].max() <= 6  # ReLU6 applied
    np.testing.assert_allclose(acts["prob"].sum(), 1.0, rtol=1e-5)
