import shutil

from brainprobe.cli import main
from brainprobe.pipeline import read_table, validate


def test_brainprobe_run_reads_the_toml_file_and_refuses_to_overwrite(tiny_run, tiny_values, tmp_path, capsys):
    output = validate(tiny_values).output
    shutil.copytree(tiny_run.output, output)
    study = tmp_path / "study.toml"
    study.write_text(validate(tiny_values).to_toml())  # the full configuration, as the report shows it
    assert main(["run", str(study), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["run", str(study), "--quiet", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert " steps from the cache" in printed and "computed" not in printed.split("\n\n")[-1]  # all from the cache
    assert printed.count(f"report: {output / 'report.html'}") == 1
    assert main(["run", str(study), "--overwrite"]) == 0  # with the step display: the path once, not twice
    assert capsys.readouterr().out.count("report: ") == 1
    assert read_table(output / "results" / "brain_rsa.csv").equals(read_table(tiny_run.output / "results" / "brain_rsa.csv"))


def test_a_bad_study_file_is_one_clear_line(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text("[rsa]\nn_perm = -5\n[subjects]\nsimulate = 1\n")
    assert main(["run", str(study)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {study}: [rsa] n_perm: expected a value >= 0, found -5"
    study.write_text("[rsa\n")
    assert main(["run", str(study)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_the_closing_line_says_what_the_cache_gave():
    import pandas as pd

    from brainprobe.cli import _steps_summary

    assert _steps_summary(pd.DataFrame({"status": ["computed"] * 18})) == "18 steps computed, none from the cache"
    assert _steps_summary(pd.DataFrame({"status": ["cached"] * 18})) == "all 18 steps from the cache"
    assert _steps_summary(pd.DataFrame({"status": ["computed"] * 3 + ["cached"] * 15})) == \
        "3 steps computed, 15 from the cache"
