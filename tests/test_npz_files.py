"""`Activations.save`/`load` and `Responses.save`/`load`: one .npz layout, exact round trips, no pickle."""

import numpy as np
import pandas as pd
import pytest

from brainprobe import InputFileError
from brainprobe.data import Responses
from brainprobe.models import Activations
from brainprobe.roi import Mesh


def test_activations_round_trip_exactly_and_read_as_plain_npz(tmp_path):
    rng = np.random.default_rng(0)
    activations = Activations({"conv1": rng.normal(size=(3, 8)).astype(np.float32), "fc8": rng.normal(size=(3, 5))},
                              image_ids=["0001", "b", "c"], shapes={"conv1": (2, 2, 2), "fc8": (5,)}, model_name="alexnet")
    path = activations.save(tmp_path / "acts.npz")
    again = Activations.load(path)
    assert again.layers == ["conv1", "fc8"] and again.image_ids == ["0001", "b", "c"]
    assert again.shapes == {"conv1": (2, 2, 2), "fc8": (5,)} and again.model_name == "alexnet"
    for layer in activations:
        assert again[layer].dtype == activations[layer].dtype
        np.testing.assert_array_equal(again[layer], activations[layer])
    with np.load(path, allow_pickle=False) as data:  # a user reads it with numpy alone
        np.testing.assert_array_equal(data["fc8"], activations["fc8"])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        activations.save(path)
    with pytest.raises(ValueError, match=r"layer names \['layers'\] are reserved"):
        Activations({"layers": np.zeros((1, 1))}).save(tmp_path / "other.npz")


def test_a_pickled_or_foreign_npz_is_refused_with_the_file_named(tmp_path):
    np.savez(tmp_path / "pickled.npz", layers=np.array(["a"]), image_ids=np.array(["x"]),
             a=np.array([{"not": "an array"}], dtype=object))
    with pytest.raises(InputFileError, match=r"pickled\.npz: cannot be read"):
        Activations.load(tmp_path / "pickled.npz")
    np.savez(tmp_path / "foreign.npz", betas=np.zeros((2, 2)))
    with pytest.raises(InputFileError, match=r"foreign\.npz: lacks \['layers', 'image_ids'\]"):
        Activations.load(tmp_path / "foreign.npz")


def test_responses_round_trip_tables_meshes_and_missing_values(tmp_path):
    rng = np.random.default_rng(1)
    trials = pd.DataFrame({"image_id": ["0001", "b", "0001", "fix"], "kind": ["RE", "AN", "RE", "fixation"],
                           "repeat": [1, 1, 2, 1], "run": [1, 1, 2, 2], "onset": [0.5, 2.0, np.nan, 4.0]})
    mesh = Mesh(np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]), np.array([[0, 1, 2], [0, 1, 3]]), "tiny")
    vertices = pd.DataFrame({"hemi": ["L", "L", "L"], "vertex": [0, 2, 3], "V1": [True, False, True],
                             "label": ["a", None, "c"]})  # a missing name stays missing, not "None"
    responses = Responses(rng.normal(size=(4, 3)), trials, vertices, meshes={"L": mesh}, subject="sub-7",
                          source="betas.h5")
    again = Responses.load(responses.save(tmp_path / "responses.npz"))
    np.testing.assert_array_equal(again.betas, responses.betas)
    pd.testing.assert_frame_equal(again.trials, responses.trials)
    pd.testing.assert_frame_equal(again.vertices, responses.vertices)
    assert again.trials["onset"].isna().sum() == 1 and again.trials["image_id"].iloc[0] == "0001"
    assert pd.isna(again.vertices["label"].iloc[1]) and again.vertices["label"].iloc[2] == "c"
    assert (again.subject, again.source) == ("sub-7", "betas.h5")
    np.testing.assert_array_equal(again.meshes["L"].faces, mesh.faces)
    assert again.meshes["L"].name == "tiny"
