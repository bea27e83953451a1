import copy

import numpy as np
import pytest

from _readme import unexplained_columns
from brainprobe.pipeline import ConfigError, Study, validate


@pytest.fixture
def with_synthesis(tiny_values):
    """The tiny study's values with a given ``[synthesis]`` section."""
    def values(**synthesis):
        return copy.deepcopy({**tiny_values, "synthesis": synthesis})
    return values


def test_synthesis_section_is_off_by_default_and_checked(with_synthesis):
    assert validate(with_synthesis())["synthesis"]["enabled"] is False
    with pytest.raises(ConfigError, match=r"\[synthesis\] objectives: expected distinct names"):
        validate(with_synthesis(objectives=["drive", "maximize"]))
    with pytest.raises(ConfigError, match=r"\[synthesis\] n_images: expected a positive value"):
        validate(with_synthesis(n_images=0))
    with pytest.raises(ConfigError, match=r"\[synthesis\] layer: 'conv1' is not one of the \[network\] layers"):
        validate(with_synthesis(layer="conv1"))
    one_roi = with_synthesis(objectives=["controversial"])
    one_roi["rois"] = {"names": ["V1"]}
    with pytest.raises(ConfigError, match="'controversial' needs two ROIs"):
        validate(one_roi)


@pytest.mark.slow
def test_a_study_with_synthesis_reports_images_and_their_predicted_responses(with_synthesis):
    values = with_synthesis(enabled=True, n_images=2, objectives=["drive", "controversial"], max_iter=15)
    values["searchlight"] = {"enabled": False}
    result = Study(validate(values), progress=False).run()
    table, validity = result.tables["synthesis"], result.tables["synthesis_validity"]
    assert set(table["made_for"]) == {"V1", "LO", "V1 vs LO"} and table["image"].nunique() == 2 * 2 + 2 * 2
    assert table.groupby("image")["model"].nunique().eq(2).all()  # every model on every image
    driven = table[(table["objective"] == "drive") & (table["model"] == table["made_for"])]
    assert (driven["z"] > 3).all()
    assert validity["heldout_accuracy"].notna().all() and validity["natural_sd"].gt(0).all()
    assert not unexplained_columns({"synthesis": table, "synthesis_validity": validity})  # README glossary
    report = (result.output / "report.html").read_text()
    assert "fig_synthesis" in report and "synthesis_validity" in report
    assert (result.output / "figures" / "fig_synthesis.png").is_file()
    rerun = Study(validate(values), overwrite=True, progress=False).run()
    assert "computed" not in set(rerun.log.loc[rerun.log["step"] == "synthesis", "status"])
    np.testing.assert_allclose(rerun.tables["synthesis"]["z"], table["z"], rtol=1e-5)
