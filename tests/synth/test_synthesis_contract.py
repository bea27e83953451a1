"""The one synthesis contract (`brainprobe.synth.Synthesis`): every synthesis object has
synthesize -> self, images, n_iter per image, history, table_, to(device) and save / load that
checks the network, on tiny networks."""

import numpy as np
import pytest
import torch
from torch import nn

from brainprobe.models import LayeredModel
from brainprobe.synth import (
    Caricature,
    EigendistortionSynthesis,
    Inversion,
    Metamer,
    PrincipalDistortionSynthesis,
    Synthesis,
    TextureSynthesis,
)

SIZE = 8


def tiny(seed, name=None):
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Softplus(), nn.Conv2d(8, 8, 3, padding=1), nn.Softplus(),
                            nn.Flatten(), nn.Linear(8 * SIZE * SIZE, 4))
    return LayeredModel(network, {"a": "1", "b": "3", "logits": "5"}, input_size=SIZE, name=name or f"tiny{seed}",
                        channels_last=False)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))


def _objects(model, images):
    return {
        "inversion": Inversion(model, images, "a", C=1.0),
        "caricature": Caricature(model, images, "b"),
        "metamer": Metamer(model, images, "a", lr=0.01),
        "texture": TextureSynthesis(model, images, ["a", "b"]),
        "eigendistortion": EigendistortionSynthesis(model, images[:1], "b"),
    }


def test_every_synthesis_object_keeps_the_contract(images, tmp_path):
    model = tiny(0)
    for name, run in _objects(model, images).items():
        assert isinstance(run, Synthesis)
        with pytest.raises(RuntimeError, match="synthesize"):
            run.table_  # noqa: B018
        assert run.synthesize(2, progress=False) is run
        table = run.table_
        assert len(run.n_iter) == len(run.images) and np.issubdtype(np.asarray(run.n_iter).dtype, np.integer)
        assert {"method", "image", "n_iter"} <= set(table) and (table["method"] == run.method).all()
        assert set(table["image"]) == set(range(len(run.images))), name
        path = run.save(tmp_path / f"{name}.pt")
        loaded = type(run).load(path, model)
        assert torch.equal(loaded.images, run.images)
        np.testing.assert_array_equal(loaded.n_iter, run.n_iter)
        with pytest.raises(ValueError, match="made with model 'tiny0', given 'other'"):
            type(run).load(path, tiny(0, name="other"))
        assert run.to("cpu") is run


def test_principal_distortions_are_a_synthesis_object(images, tmp_path):
    pair = [(tiny(1), "a"), (tiny(2), "b")]
    run = PrincipalDistortionSynthesis(pair, images[0]).synthesize(50)
    table = run.table_
    assert list(table["distortion"]) == ["u", "v"] and (table["solver"] == "dense").all()
    assert table["objective_gap"].abs().max() < 1e-9 and table["converged"].all()
    loaded = PrincipalDistortionSynthesis.load(run.save(tmp_path / "pd.pt"), pair)
    assert loaded.result_.objective == pytest.approx(run.result_.objective)
    with pytest.raises(ValueError, match="made with"):
        PrincipalDistortionSynthesis.load(tmp_path / "pd.pt", [(tiny(1), "b"), (tiny(2), "b")])
