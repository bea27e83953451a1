"""The README's "Images that tell the brain and the network apart" example runs as written
(slow: it fits encoding models and synthesizes through a 224 px AlexNet)."""

import pytest

from _readme import section_blocks

EXAMPLE = section_blocks("Images that tell the brain and the network apart")["python"]


@pytest.mark.slow
def test_the_brain_synthesis_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves controversial.pt in the working folder
    namespace = {}
    exec(compile(EXAMPLE, "README.md", "exec"), namespace)
    assert (tmp_path / "controversial.pt").exists()
    assert set(namespace["pair"].separation_) >= {"first", "second", "controversy"}
    assert set(namespace["mei"].validity_["model"]) == {"V1 conv2", "LO conv5"}  # every model judged
    assert namespace["mei"].validity_["heldout_accuracy"].notna().all()
