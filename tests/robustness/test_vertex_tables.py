"""Issue 26, items 5-6: vertex tables are read exactly, and localizers are never ignored."""

import numpy as np
import pandas as pd
import pytest

from brainprobe.data import Responses, load_responses
from brainprobe.pipeline import _steps as steps


def _files(tmp_path, roi_cells, vertices=None):
    n = len(roi_cells)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "betas.npy", rng.normal(size=(6, n)))
    pd.DataFrame({"image_id": ["a", "b", "c"] * 2}).to_csv(tmp_path / "trials.csv", index=False)
    numbers = list(range(n)) if vertices is None else vertices
    lines = ["hemi,vertex,V1"] + [f"L,{v},{cell}" for v, cell in zip(numbers, roi_cells, strict=True)]
    (tmp_path / "vertices.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "betas.npy", tmp_path / "trials.csv", tmp_path / "vertices.csv"


@pytest.mark.parametrize(("cells", "expected"), [
    (["yes", "no", "no", "yes"], [True, False, False, True]),
    (["true", "false", "false", "true"], [True, False, False, True]),
    (["TRUE", "False", "0", "1"], [True, False, False, True]),
    (["1", "0", "0", "0"], [True, False, False, False]),
])
def test_roi_columns_are_read_as_the_words_say(tmp_path, cells, expected):
    responses = load_responses(*_files(tmp_path, cells)[:2], vertices=tmp_path / "vertices.csv")
    assert responses.roi_mask("V1").tolist() == expected  # astype(bool) made every one of them True


@pytest.mark.parametrize(("cells", "row", "found"), [
    (["yes", "", "no", "yes"], 2, "''"),
    (["true", "false", "maybe", "true"], 3, "'maybe'"),
    (["1", "0", "2", "0"], 3, "2"),
])
def test_other_roi_values_are_refused_naming_row_and_value(tmp_path, cells, row, found):
    betas, trials, vertices = _files(tmp_path, cells)
    responses = load_responses(betas, trials, vertices=vertices)
    with pytest.raises(ValueError, match=rf"ROI column 'V1' row {row}: expected true/false, yes/no or 1/0, "
                                         rf"found {found}"):
        responses.roi_mask("V1")
    with pytest.raises(ValueError, match=rf"\[\[subject\]\] s1 vertices {vertices}: ROI column 'V1' row {row}"):
        steps.add_rois(responses, {"id": "s1", "vertices": str(vertices)},
                       {"rois": {"names": ["V1"], "atlas": "columns", "localizers": {}, "localizer_alpha": 0.05}})


@pytest.mark.parametrize(("numbers", "message"), [
    ([0, 1, -1, 3], r"vertex table row 3: vertex -1 is not a vertex index"),
    ([0, 1, 1, 3], r"vertex table row 3 repeats hemi 'L' vertex 1"),
    ([0, 1, 2.5, 3], r"vertex table row 3: vertex 2.5 is not a vertex index"),
])
def test_negative_fractional_and_repeated_vertices_are_refused(tmp_path, numbers, message):
    betas, trials, vertices = _files(tmp_path, ["1", "0", "0", "1"], vertices=numbers)
    with pytest.raises(ValueError, match=rf"vertices {vertices}: {message}"):
        load_responses(betas, trials, vertices=vertices)
    table = pd.DataFrame({"hemi": "L", "vertex": numbers})
    with pytest.raises(ValueError, match=message):
        Responses(np.random.default_rng(0).normal(size=(2, 4)), pd.DataFrame({"image_id": ["a", "b"]}), table)


def _localized(kinds_extra, contrast):
    """A subject whose first two vertices answer 'objects' more than 'scrambled'; ROI from a column."""
    rng = np.random.default_rng(1)
    n = 6
    image = rng.normal(size=(4, n))
    objects = rng.normal(size=(10, n)) + np.r_[4.0, 4.0, 0, 0, 0, 0]
    scrambled = rng.normal(size=(10, n))
    trials = pd.DataFrame({"image_id": ["a", "b", "a", "b"] + [f"l{i}" for i in range(20)],
                           "kind": ["RE"] * 4 + ["objects"] * 10 + ["scrambled"] * 10 + kinds_extra})
    vertices = pd.DataFrame({"hemi": "L", "vertex": range(n), "LO": ["yes"] * 4 + ["no"] * 2})
    responses = Responses(np.concatenate([image, objects, scrambled]), trials, vertices)
    config = {"rois": {"names": ["LO"], "atlas": "columns", "localizers": {"LO": {"include": contrast, "exclude": ""}},
                       "localizer_alpha": 0.05}}
    return responses, config


def test_localizers_are_honoured_with_table_rois():
    responses, config = _localized([], "objects>scrambled")
    steps.add_rois(responses, {"id": "s1", "vertices": "v.csv"}, config)
    assert responses.vertices["LO"].tolist() == [True, True, False, False, False, False]


def test_localizers_naming_missing_kinds_are_refused_with_table_rois():
    responses, config = _localized([], "objects>noise")
    with pytest.raises(ValueError, match=r"\[\[subject\]\] s1: \[rois\] localizers LO = 'objects>noise': fewer than "
                                         r"2 trials of kind \['noise'\]"):
        steps.add_rois(responses, {"id": "s1", "vertices": "v.csv"}, config)
