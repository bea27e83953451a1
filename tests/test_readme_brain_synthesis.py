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
    assert namespace["pair"].separation_ is not None
    assert len(namespace["mei"].validity_) > 0
