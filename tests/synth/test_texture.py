import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from brainprobe.rsa import rdm
from brainprobe.stats import mutual_information
from brainprobe.stimuli import sample_images
from brainprobe.synth import (
    TextureSynthesis,
    gram_matrices,
    gram_rdms,
    gram_vectors,
    texture_clustering,
)


def test_texture_synthesis_matches_the_grams_better_than_another_crop_of_the_texture(efficientnet, tmp_path):
    # two crops of one texture (the immunohistochemistry slide): the synthesis must be at least as
    # close to the exemplar's Gram matrices as a second real sample of the same texture is
    photo = sample_images(size=192).images[10]
    exemplar, other_crop = photo[None, :, :64, :64], photo[None, :, 96:160, 96:160]
    synthesis = TextureSynthesis(efficientnet, exemplar, ["stem", "block1", "block2"])
    other = float(synthesis.loss(other_crop))
    synthesis.synthesize(20, progress=False)
    start, end = float(synthesis.loss(synthesis.start)), float(synthesis.loss(synthesis.images))
    assert other < start and end <= 0.5 * other, (start, other, end)
    assert synthesis.table_["gram_loss"].iloc[0] == pytest.approx(end, rel=1e-4)
    assert synthesis.images.min() >= 0 and synthesis.images.max() <= 1
    path = synthesis.save(tmp_path / "texture.pt")
    with pytest.raises(FileExistsError, match="overwrite"):
        synthesis.save(path)
    loaded = TextureSynthesis.load(path, efficientnet)
    assert torch.equal(loaded.images, synthesis.images) and torch.equal(loaded.start, synthesis.start)
    assert loaded.layers == synthesis.layers and np.array_equal(loaded.losses, synthesis.losses)
    torch.testing.assert_close(loaded.loss(loaded.images), synthesis.loss(synthesis.images))


def test_gram_matrices_and_rdms(kaiming_alexnet):
    images = sample_images(3, size=64).images
    grams = gram_matrices(kaiming_alexnet, images, ["conv1"])
    features = kaiming_alexnet.layer_outputs(images, ["conv1"])["conv1"].flatten(2)
    torch.testing.assert_close(grams["conv1"], features @ features.transpose(1, 2))
    vectors = gram_vectors(kaiming_alexnet, images, ["conv1"])
    assert vectors["conv1"].shape == (3, 64 * 65 // 2)
    np.testing.assert_allclose(gram_rdms(kaiming_alexnet, images, ["conv1"])["conv1"], rdm(vectors["conv1"], "euclidean"))


def test_clustering_recovers_planted_texture_classes(efficientnet):
    # three "texture classes": random crops of three different photographs (cat, coffee, palace)
    photos = sample_images(6, size=224).images[[0, 1, 5]]
    generator = torch.Generator().manual_seed(0)
    crops, labels = [], []
    for label, photo in enumerate(photos):
        for _ in range(6):
            top, left = torch.randint(0, 160, (2,), generator=generator).tolist()
            crops.append(photo[:, top:top + 64, left:left + 64])
            labels.append(label)
    vectors = gram_vectors(efficientnet, torch.stack(crops), ["block2", "block3"])
    table = texture_clustering(vectors, labels)
    assert (table["n_clusters"] == 3).all()
    # Ward clusters of the real network's Gram vectors are the three photographs
    np.testing.assert_allclose(table["mi_plugin"], table["upper_bound"], atol=1e-9)


def test_mutual_information_estimates():
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    result = mutual_information(labels, clusters, correction="none")
    assert result["mi_plugin"] == pytest.approx(mutual_info_score(labels, clusters) / np.log(2))
    shuffled = mutual_information(labels, clusters, correction="shuffle")
    assert abs(shuffled["mi"]) < 0.05  # independent labelings: about zero once chance is removed
    identical = mutual_information(labels, labels)
    assert identical["mi_plugin"] == pytest.approx(identical["upper_bound"])
    with pytest.raises(ValueError, match="correction"):
        mutual_information(labels, clusters, correction="jackknife")
