"""README "Paper 001, choice by choice": its command lines as written. Without AlexNet's weights
the preset stops at once with the one command that fetches them; with them (slow) it runs."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from _readme import section
from brainprobe.cli import main

PRESET = Path(__file__).resolve().parents[2] / "examples" / "paper001.toml"
LINES = [shlex.split(line.split("#", 1)[0]) for line in
         re.search(r"```\n(brainprobe .*?)```", section("Paper 001, choice by choice"), flags=re.S).group(1).splitlines()
         if line.strip()]


def _checkout(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the example next to an empty torch cache: a fresh offline machine."""
    (tmp_path / "examples").mkdir()
    shutil.copy(PRESET, tmp_path / "examples")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_the_readme_says_to_fetch_alexnet_first_and_the_run_stops_at_once_without_it(tmp_path, monkeypatch, capsys):
    assert [words[1] for words in LINES] == ["fetch-weights", "run"] and LINES[1][2] == "examples/paper001.toml"
    _checkout(tmp_path, monkeypatch)
    assert main(LINES[1][1:]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "`brainprobe fetch-weights alexnet`" in error[0]
    assert not list((tmp_path / "examples").rglob("report.html"))


def test_the_offline_switch_the_file_describes_gives_a_valid_study(tmp_path):
    from brainprobe.pipeline._config import load_config

    text = PRESET.read_text()
    assert 'name = "efficientnet_lite0" and delete the layers' in text  # the file says how
    text = text.replace('name = "alexnet"', 'name = "efficientnet_lite0"')
    text = re.sub(r'\nlayers = \[[^\]]*\]\n', "\n", text)
    (tmp_path / "offline.toml").write_text(text)
    config = load_config(tmp_path / "offline.toml")
    assert config["network"]["name"] == "efficientnet_lite0" and not config["network"]["layers"]


@pytest.mark.slow
def test_the_readme_paper_lines_run_as_written_once_the_weights_are_fetched(tmp_path, monkeypatch, capsys):
    """`fetch-weights` needs the network; a seeded random AlexNet state dict stands in for its file."""
    import torch
    from torchvision.models import AlexNet_Weights, alexnet

    checkpoints = _checkout(tmp_path, monkeypatch)
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(alexnet().state_dict(), checkpoints / Path(AlexNet_Weights.IMAGENET1K_V1.url).name)
    assert main(LINES[0][1:]) == 0  # finds the file: nothing to download
    assert main(LINES[1][1:]) == 0
    assert (tmp_path / "examples" / "paper001-results" / "report.html").is_file()
