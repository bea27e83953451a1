"""``import brainprobe as bp`` is light, and its subpackages load on first use (as scipy's do)."""

import subprocess
import sys

import pytest

import brainprobe as bp

SUBPACKAGES = {"adversarial", "data", "encoding", "models", "pipeline", "plotting", "roi", "rsa", "stats",
               "stimuli", "synth"}


def test_subpackages_are_attributes_and_listed():
    from brainprobe.rsa import kind_similarity

    assert bp.rsa.kind_similarity is kind_similarity
    assert bp.stats.mann_kendall is not None
    assert SUBPACKAGES <= set(dir(bp)) and SUBPACKAGES <= set(bp.__all__)


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'rsatoolbox'"):
        bp.rsatoolbox  # noqa: B018
    assert not hasattr(bp, "cli_")


def _modules_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("code", ["import brainprobe", "import brainprobe.cli; brainprobe.cli.build_parser()"])
def test_importing_the_package_or_building_the_cli_loads_no_heavy_library(code):
    loaded = _modules_after(code)
    assert not {"torch", "matplotlib", "nilearn", "pandas", "scipy"} & loaded

