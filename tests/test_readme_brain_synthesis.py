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
    validity = namespace["mei"].validity_
    assert set(validity["model"]) == set(namespace["modules"]) == {"V1 conv2", "V1 conv5", "LO conv2", "LO conv5"}
    assert validity["heldout_accuracy"].notna().all() and validity["accuracy_null95"].notna().all()
    # each model is trusted only where its held-out accuracy beats its permutation null
    assert (validity["trusted"] == (validity["heldout_accuracy"] > validity["accuracy_null95"])).all()
