"""Best-layer tests count subjects, not repeats (issue 22 item 3)."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from brainprobe.encoding import best_layer_proportions, best_layer_tests

LAYERS = ["L1", "L2", "L3", "L4"]


def _proportions(seed=0):
    """3 subjects x 2 repeats x 2 ROIs; each repeat's best layers drawn around a subject's own bias."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(3):
        bias = rng.normal(size=len(LAYERS))
        for repeat in (1, 2):
            for roi in ("V1", "LO"):
                logits = bias + 0.3 * rng.normal(size=len(LAYERS)) + (np.arange(4) if roi == "LO" else 0)
                best = rng.choice(LAYERS, size=100, p=np.exp(logits) / np.exp(logits).sum())
                rows.append(pd.DataFrame({"subject": f"sub-{s}", "measurement": f"repeat{repeat}", "roi": roi,
                                          "best_layer": best}))
    return best_layer_proportions(pd.concat(rows, ignore_index=True), LAYERS)


def test_three_subjects_two_repeats_give_two_degrees_of_freedom():
    proportions = _proportions()
    tests = best_layer_tests(proportions, low=["L1", "L2"], high=["L3", "L4"], early_roi="V1", late_roi="LO")
    assert (tests["df"] == 2).all() and (tests["n"] == 3).all() and (tests["resampled"] == "subjects").all()
    # the p of a paired t-test of the subject means (repeats averaged within subject, then ROIs)
    grouped = proportions.assign(group=np.where(proportions["layer"].isin(["L1", "L2"]), "low",
                                                np.where(proportions["layer"].isin(["L3", "L4"]), "high", "other")))
    per = grouped.groupby(["subject", "measurement", "roi", "group"])["proportion"].sum().unstack("group")
    subject_means = per.groupby("subject").mean()
    expected = ss.ttest_rel(subject_means["low"], subject_means["high"])
    assert tests.loc[0, "p"] == pytest.approx(expected.pvalue, rel=1e-12)
    assert tests.loc[0, "t"] == pytest.approx(expected.statistic, rel=1e-12)
    roi_means = per["high"].groupby(["subject", "roi"]).mean().unstack("roi")
    assert tests.loc[1, "p"] == pytest.approx(ss.ttest_rel(roi_means["LO"], roi_means["V1"]).pvalue, rel=1e-12)


def test_the_papers_pooled_repeats_test_stays_available_and_labelled():
    tests = best_layer_tests(_proportions(), low=["L1", "L2"], high=["L3", "L4"], unit="measurements")
    assert (tests["df"] == 5).all()
    assert tests["resampled"].str.contains("paper").all()
    with pytest.raises(ValueError, match="unit"):
        best_layer_tests(_proportions(), low=["L1"], high=["L4"], unit="repeats")
