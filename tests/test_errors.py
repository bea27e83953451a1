"""Errors users can catch: ``brainprobe.BrainprobeInputError`` and its subclasses at the input
boundaries (responses, trial tables, images, saved stimulus sets, study files), each still a
ValueError, chained to the library error that explains a corrupt file."""

import numpy as np
import pandas as pd
import pytest
from PIL import UnidentifiedImageError

import brainprobe
from brainprobe import BrainprobeInputError, ConfigError, InputFileError, MissingFileError
from brainprobe.data import load_responses, load_trial_table
from brainprobe.pipeline import load_config
from brainprobe.stimuli import StimulusSet, load_folder, load_stimuli, read_image

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def test_the_classes_are_public_and_stay_value_errors():
    for name in ("BrainprobeInputError", "InputFileError", "MissingFileError", "ConfigError"):
        assert name in brainprobe.__all__ and issubclass(getattr(brainprobe, name), ValueError)
    assert issubclass(InputFileError, BrainprobeInputError) and issubclass(ConfigError, BrainprobeInputError)
    assert issubclass(MissingFileError, BrainprobeInputError) and issubclass(MissingFileError, FileNotFoundError)
    assert brainprobe.pipeline.ConfigError is ConfigError  # the pipeline's own name for it


def test_a_corrupt_hdf5_output_is_an_input_file_error_chained_to_h5py(tmp_path):
    path = tmp_path / "TYPED_FITHRF_GLMDENOISE_RR.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n and then nothing")
    with pytest.raises(InputFileError, match="cannot be read as") as caught:
        load_responses(tmp_path / path.name, pd.DataFrame({"image_id": ["a"]}))
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)  # h5py's own error, for the traceback


def test_a_truncated_npz_is_chained_to_numpys_error(tmp_path):
    path = tmp_path / "betas.npz"
    np.savez(path, betas=np.zeros((4, 10)))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputFileError) as caught:
        load_responses(path)
    assert caught.value.__cause__ is not None and not isinstance(caught.value.__cause__, BrainprobeInputError)


def test_an_unparsable_trial_table_is_chained_to_the_parser(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text('image_id,run\n"a,1\nb,2,3,4\n')
    with pytest.raises(InputFileError, match="not a readable CSV table") as caught:
        load_trial_table(path)
    assert isinstance(caught.value.__cause__, pd.errors.ParserError)


def test_missing_files_are_missing_file_errors(tmp_path):
    for call in (lambda: load_responses(tmp_path / "nope.npy"), lambda: load_trial_table(tmp_path / "nope.csv"),
                 lambda: read_image(tmp_path / "nope.png"), lambda: load_stimuli(tmp_path)):
        with pytest.raises(MissingFileError, match="nope|not found"):
            call()


def test_an_unreadable_image_is_chained_to_pillow(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"not a png at all")
    with pytest.raises(InputFileError, match="cannot be read as an image") as caught:
        read_image(path)
    assert isinstance(caught.value.__cause__, UnidentifiedImageError)
    with pytest.raises(InputFileError):
        load_folder(tmp_path)


def test_an_edited_saved_stimulus_set_is_an_input_file_error(tmp_path):
    StimulusSet(np.zeros((2, 3, 8, 8), np.float32), pd.DataFrame({"image_id": ["a", "b"]})).save(tmp_path / "set")
    (tmp_path / "set" / "stimuli.csv").write_text("image_id\nb\na\n")
    with pytest.raises(InputFileError, match="does not match"):
        load_stimuli(tmp_path / "set")


def test_a_broken_study_file_is_a_config_error_chained_to_the_toml_parser(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text("[study]\nname = 'x\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_config(path)
    assert isinstance(caught.value, BrainprobeInputError)
    assert isinstance(caught.value.__cause__, tomllib.TOMLDecodeError)
