import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
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


def _high_frequency_energy(images):
    # what a 3 x 3 box blur removes: pixel-scale speckle
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    return (images - blurred).pow(2).mean(dim=(1, 2, 3))


@pytest.mark.slow  # 20 L-BFGS steps of two images through EfficientNet's block2 (~25 s alone)
def test_texture_synthesis_matches_the_grams_better_than_another_crop_of_the_texture(efficientnet, tmp_path):
    # two textures in one batch, a colour one (the immunohistochemistry slide) and a grey one
    # (skimage's brick wall), each with a second crop: every synthesis must be at least as close to
    # its own exemplar's Gram matrices as a second real sample of that texture is, far from the
    # other exemplar's, and no more speckled than the exemplar
    slide = sample_images(size=192).images[10]
    brick = torch.tensor(skimage.data.brick() / 255.0, dtype=torch.float32).expand(3, -1, -1)
    brick = F.interpolate(brick[None], size=192, mode="bilinear", antialias=True)[0]
    exemplars = torch.stack([slide[:, :64, :64], brick[:, :64, :64]])
    other_crops = torch.stack([slide[:, 96:160, 96:160], brick[:, 96:160, 96:160]])
    synthesis = TextureSynthesis(efficientnet, exemplars, ["stem", "block1", "block2"])
    other = synthesis.loss(other_crops)
    synthesis.synthesize(20, progress=False)
    start, end = synthesis.loss(synthesis.start), synthesis.loss(synthesis.images)
    swapped = synthesis.loss(synthesis.images, torch.tensor([1, 0]))  # against the other exemplar
    assert (other < start).all() and (end <= 0.5 * other).all(), (start, other, end)
    assert (end < 0.1 * swapped).all(), (end, swapped)
    speckle = _high_frequency_energy(synthesis.images) / _high_frequency_energy(exemplars)
    assert (speckle < 2).all(), speckle
    # the grey wall's texture stays grey: no colour speckle
    chroma = (synthesis.images[1] - synthesis.images[1].mean(dim=0)).abs().max()
    assert chroma < 0.1, chroma  # measured 0.05 (13 grey levels) at most
    assert synthesis.table_["gram_loss"].to_numpy() == pytest.approx(end.numpy(), rel=1e-4)
    assert synthesis.images.min() >= 0 and synthesis.images.max() <= 1
    path = synthesis.save(tmp_path / "texture.pt")
    with pytest.raises(FileExistsError, match="overwrite"):
        synthesis.save(path)
    loaded = TextureSynthesis.load(path, efficientnet)
    assert torch.equal(loaded.images, synthesis.images) and torch.equal(loaded.start, synthesis.start)
    assert loaded.layers == synthesis.layers and np.array_equal(loaded.losses, synthesis.losses)
    torch.testing.assert_close(loaded.loss(loaded.images), synthesis.loss(synthesis.images))


def test_each_texture_in_a_batch_is_synthesized_as_if_alone(kaiming_alexnet):
    # each image is matched against its own exemplar with its own optimizer: a batch of two gives
    # exactly what two separate syntheses give (the objective once compared every image with the
    # sum over all exemplars, so a batch synthesized one blend of its textures)
    exemplars = sample_images(2, size=32).images
    batch = TextureSynthesis(kaiming_alexnet, exemplars, ["conv1"]).synthesize(3, progress=False)
    for i in range(2):
        alone = TextureSynthesis(kaiming_alexnet, exemplars[i:i + 1], ["conv1"])
        # the batch's own start and targets (a batched forward pass rounds differently, and
        # L-BFGS's line search decisions amplify rounding)
        alone.start = batch.start[i:i + 1]
        alone.targets = {layer: target[i:i + 1] for layer, target in batch.targets.items()}
        alone.scales = {layer: scale[i:i + 1] for layer, scale in batch.scales.items()}
        alone.synthesize(3, progress=False)
        torch.testing.assert_close(batch.images[i:i + 1], alone.images)
    own, swapped = batch.loss(batch.images), batch.loss(batch.images, torch.tensor([1, 0]))
    assert (own < swapped).all()
    with pytest.raises(ValueError, match="one exemplar per image"):
        batch.loss(batch.images, torch.tensor([0]))


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
