"""extract(..., out=folder): activations streamed to one .npy per layer, reopened as memory maps."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from brainprobe import InputFileError, MissingFileError
from brainprobe.encoding import ROMP
from brainprobe.models import Activations, LayeredModel, extract
from brainprobe.rsa import kind_similarity, rdm
from brainprobe.stimuli import StimulusSet

N_IMAGES, BATCH = 12, 5  # the last batch is short


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
                            nn.Flatten(), nn.Linear(256, 10))
    return LayeredModel(network, {"conv1": "1", "conv2": "4", "fc": "7"}, input_size=16, name="tiny",
                        weights_source="test seed 0")


@pytest.fixture(scope="module")
def stimuli():
    """RE images, AI = RE + faint noise (the same for the network), AN unrelated: planted structure."""
    rng = np.random.default_rng(0)
    n = N_IMAGES // 3
    re = rng.uniform(0.1, 0.9, size=(n, 3, 16, 16))
    ai = np.clip(re + 0.01 * rng.normal(size=re.shape), 0, 1)
    an = rng.uniform(0.1, 0.9, size=(n, 3, 16, 16))
    table = pd.DataFrame({"image_id": [f"{k}/{i}" for k in ("RE", "AN", "AI") for i in range(n)],
                          "kind": [k for k in ("RE", "AN", "AI") for _ in range(n)],
                          "source_id": [f"RE/{i}" for _ in range(3) for i in range(n)]})
    return StimulusSet(torch.tensor(np.concatenate([re, an, ai]), dtype=torch.float32), table)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_streamed_equals_in_memory_and_is_read_only_memmaps(tiny, stimuli, tmp_path):
    in_memory = extract(tiny, stimuli, batch_size=BATCH)
    streamed = extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "acts", progress=True)
    assert streamed.layers == in_memory.layers == ["conv1", "conv2", "fc"]
    for layer in in_memory:
        assert isinstance(streamed[layer], np.memmap) and streamed[layer].mode == "r"
        assert not streamed[layer].flags.writeable
        assert streamed[layer].dtype == np.float32 and in_memory[layer].dtype == np.float32
        np.testing.assert_array_equal(streamed[layer], in_memory[layer])  # float32, bit for bit
        with pytest.raises(ValueError, match="read-only"):
            streamed[layer][0, 0] = 1.0
    assert streamed.image_ids == in_memory.image_ids == stimuli.image_ids
    assert streamed.shapes == in_memory.shapes == {"conv1": (8, 16, 16), "conv2": (16, 8, 8), "fc": (10,)}
    assert streamed.model_name == "tiny" and streamed.folder == (tmp_path / "acts").resolve()
    # the manifest says what the folder holds; nothing else is left beside it
    manifest = json.loads((tmp_path / "acts" / "activations.json").read_text())
    assert manifest["image_ids"] == stimuli.image_ids and manifest["dtype"] == "float32"
    assert manifest["weights_source"] == "test seed 0" and manifest["n_images"] == N_IMAGES
    assert [(e["name"], e["n_units"]) for e in manifest["layers"]] == [("conv1", 2048), ("conv2", 1024), ("fc", 10)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts"]
    # plain .npy files: any numpy reads them
    np.testing.assert_array_equal(np.load(tmp_path / "acts" / "02_fc.npy"), in_memory["fc"])


def test_load_maps_the_files_instead_of_reading_them(tiny, stimuli, tmp_path):
    extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "acts")
    loaded = Activations.load(tmp_path / "acts")
    first = np.array(loaded["fc"][0])
    # rewrite the file's bytes after loading: a mapped array sees them, a copy would not
    path = tmp_path / "acts" / "02_fc.npy"
    with open(path, "r+b") as handle:
        handle.seek(path.stat().st_size - N_IMAGES * 10 * 4)
        handle.write(np.full(10, 7.0, "<f4").tobytes())
    assert Path(loaded["fc"].filename) == path.resolve()
    np.testing.assert_array_equal(loaded["fc"][0], np.full(10, 7.0, np.float32))
    assert not np.array_equal(first, loaded["fc"][0])


def test_numpy_images_on_disk_are_read_batch_by_batch(tiny, stimuli, tmp_path):
    np.save(tmp_path / "images.npy", stimuli.images.numpy())
    on_disk = np.load(tmp_path / "images.npy", mmap_mode="r")
    streamed = extract(tiny, on_disk, batch_size=BATCH, out=tmp_path / "acts")
    reference = extract(tiny, stimuli.images, batch_size=BATCH)
    for layer in reference:
        np.testing.assert_array_equal(streamed[layer], reference[layer])
    assert streamed.image_ids is None
    bad = np.array(on_disk)
    bad[7, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"images\[5:10\]: contains NaN"):
        extract(tiny, bad, batch_size=BATCH, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_refuses_to_replace_without_overwrite_and_never_a_users_files(tiny, stimuli, tmp_path):
    out = tmp_path / "acts"
    extract(tiny, stimuli, batch_size=BATCH, out=out)
    before = _files(out)
    with pytest.raises(FileExistsError, match=rf"{out}.*holds activations already; pass overwrite=True"):
        extract(tiny, stimuli, batch_size=BATCH, out=out)
    assert _files(out) == before
    flipped = stimuli.images.flip(-1)
    replaced = extract(tiny, flipped, ["fc"], batch_size=BATCH, out=out, overwrite=True)
    np.testing.assert_array_equal(replaced["fc"], extract(tiny, flipped, ["fc"], batch_size=BATCH)["fc"])
    assert sorted(p.name for p in out.iterdir()) == ["00_fc.npy", "activations.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts"]  # the old files are gone, not set aside
    # a folder with a user's file, or a file at that path: never replaced, overwrite or not
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"mine: holds files brainprobe did not write \(notes.txt\)"):
        extract(tiny, stimuli, batch_size=BATCH, out=mine, overwrite=True)
    (out / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=r"also files they do not list \(notes.txt\)"):
        extract(tiny, stimuli, batch_size=BATCH, out=out, overwrite=True)
    assert (mine / "notes.txt").read_text() == (out / "notes.txt").read_text() == "keep"
    (tmp_path / "file.npy").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="is a file; expected a folder"):
        extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "file.npy", overwrite=True)
    # an empty folder the user made is fine
    (tmp_path / "empty").mkdir()
    assert extract(tiny, stimuli, ["fc"], batch_size=BATCH, out=tmp_path / "empty").folder.name == "empty"


class _Interrupt:
    """A forward hook that raises ``error`` on the ``at``-th batch."""

    def __init__(self, model, error, at=2):
        self.calls, self.error, self.at = 0, error, at
        self.handle = model.network[0].register_forward_hook(self)

    def __call__(self, *_):
        self.calls += 1
        if self.calls == self.at:
            raise self.error


@pytest.mark.parametrize("error", [RuntimeError("out of memory"), KeyboardInterrupt()])
def test_interrupted_extraction_leaves_nothing_that_looks_complete(tiny, stimuli, tmp_path, error):
    # a fresh folder: nothing at its name afterwards, and no hidden partial folder either
    interrupt = _Interrupt(tiny, error)
    try:
        with pytest.raises(type(error)):
            extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "new")
        assert interrupt.calls == 2
    finally:
        interrupt.handle.remove()
    assert list(tmp_path.iterdir()) == []
    # an interrupted overwrite keeps the earlier activations whole and loadable
    out = tmp_path / "acts"
    extract(tiny, stimuli, batch_size=BATCH, out=out)
    before = _files(out)
    interrupt = _Interrupt(tiny, error)
    try:
        with pytest.raises(type(error)):
            extract(tiny, stimuli.images.flip(-1), batch_size=BATCH, out=out, overwrite=True)
    finally:
        interrupt.handle.remove()
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts"]
    assert Activations.load(out).image_ids == stimuli.image_ids


def test_load_checks_the_folder_against_its_manifest(tiny, stimuli, tmp_path):
    out = tmp_path / "acts"
    extract(tiny, stimuli, batch_size=BATCH, out=out)
    with pytest.raises(MissingFileError, match=r"no activations.json; not a folder written by extract"):
        Activations.load(tmp_path)
    manifest_path = out / "activations.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "n_images": N_IMAGES + 1}))
    with pytest.raises(InputFileError, match=r"image_ids': expected 13 ids, found 12"):
        Activations.load(out)
    manifest_path.write_text(json.dumps({**manifest, "image_ids": None, "n_images": N_IMAGES + 1}))
    with pytest.raises(InputFileError, match=r"00_conv1.npy: expected float32 \(13, 2048\).*found float32 \(12, 2048\)"):
        Activations.load(out)
    manifest_path.write_text(json.dumps(manifest))
    path = out / "01_conv2.npy"
    path.write_bytes(path.read_bytes()[:-4])  # a truncated file
    with pytest.raises(InputFileError, match="01_conv2.npy: cannot be read as a .npy array"):
        Activations.load(out)
    path.unlink()
    with pytest.raises(MissingFileError, match=r"01_conv2.npy: file not found \(listed for layer 'conv2'"):
        Activations.load(out)


def test_memory_mapped_activations_feed_rdms_and_kind_similarity(tiny, stimuli, tmp_path):
    in_memory = extract(tiny, stimuli, batch_size=BATCH)
    extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "acts")
    loaded = Activations.load(tmp_path / "acts")
    np.testing.assert_array_equal(rdm(loaded["conv2"]), rdm(in_memory["conv2"]))
    kwargs = dict(n_perm=20, n_boot=10, seed=0, device="cpu")
    table = kind_similarity(loaded, stimuli, **kwargs)
    pd.testing.assert_frame_equal(table, kind_similarity(in_memory, stimuli, **kwargs))
    similarity = table.set_index(["layer", "pair"])["similarity"]
    for layer in loaded:  # the planted structure comes through: AI is RE, AN is not
        assert similarity[layer, "RE-AI"] > 0.9 > similarity[layer, "RE-AN"]
    # an encoding model fits on a map exactly as on the array
    y = np.random.default_rng(1).normal(size=(N_IMAGES, 3))
    fits = [ROMP(n_nonzero=2, device="cpu").fit(values, y) for values in (loaded["conv2"], in_memory["conv2"])]
    assert fits[0].coef_.nnz > 0
    np.testing.assert_array_equal(fits[0].coef_.toarray(), fits[1].coef_.toarray())
    np.testing.assert_array_equal(fits[0].predict(loaded["conv2"]), fits[1].predict(in_memory["conv2"]))
    # and the memory-mapped activations save to the one-file layout like any others
    loaded.save(tmp_path / "acts.npz")
    np.testing.assert_array_equal(Activations.load(tmp_path / "acts.npz")["fc"], in_memory["fc"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_images_with_nan_or_infinity_are_refused_before_any_work(tiny, stimuli, tmp_path, bad):
    images = stimuli.images.clone()
    images[-1, 2, 3, 4] = bad  # the last image, last batch: the check is on the whole set first
    with pytest.raises(ValueError, match="images: contains NaN or infinite pixel values"):
        extract(tiny, images, batch_size=BATCH, out=tmp_path / "acts")
    assert list(tmp_path.iterdir()) == []


def test_streaming_holds_about_one_batch_while_in_memory_holds_the_whole_result(tiny, tmp_path):
    import tracemalloc

    n_images, batch = 400, 5
    images = torch.rand(n_images, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    total = n_images * (2048 + 1024 + 10) * 4  # bytes of every layer's float32 activations
    peaks = {}
    for mode, out in (("memory", None), ("stream", tmp_path / "acts")):
        tracemalloc.start()  # sees numpy's buffers (not torch's: the batch itself is not counted)
        try:
            extract(tiny, images, batch_size=batch, out=out)
            peaks[mode] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["memory"] >= total
    assert peaks["stream"] < 2 * total * batch / n_images  # under two batches' worth, whatever n_images


def test_in_memory_extraction_that_cannot_fit_is_refused_pointing_to_out(tiny, stimuli, tmp_path, monkeypatch):
    import brainprobe._memory

    total = N_IMAGES * (2048 + 1024 + 10) * 4
    monkeypatch.setattr(brainprobe._memory, "available_bytes", lambda: total - 1)
    with pytest.raises(ValueError, match=r"activations of 12 images at \['conv1', 'conv2', 'fc'\] would need .* "
                                         r"pass out=<folder> to stream them to disk"):
        extract(tiny, stimuli, batch_size=BATCH)
    assert extract(tiny, stimuli, batch_size=BATCH, out=tmp_path / "acts").n_images == N_IMAGES
    monkeypatch.setattr(brainprobe._memory, "available_bytes", lambda: total)
    assert extract(tiny, stimuli, batch_size=BATCH).n_images == N_IMAGES


def test_image_files_are_read_batch_by_batch_as_load_folder_reads_them(tiny, tmp_path):
    from PIL import Image

    from brainprobe.stimuli import load_folder

    rng = np.random.default_rng(2)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (h, w) in enumerate([(20, 24), (30, 16), (16, 16), (40, 52), (17, 23), (24, 20), (64, 48)]):
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    paths = sorted(folder.glob("*.png"))
    reference = load_folder(folder, size=tiny.input_size)  # every image in memory at once
    streamed = extract(tiny, paths, batch_size=3, out=tmp_path / "acts")
    in_memory = extract(tiny, [str(p) for p in paths], batch_size=3)
    assert streamed.image_ids == in_memory.image_ids == reference.image_ids == [f"img{i}" for i in range(7)]
    for layer, values in extract(tiny, reference, batch_size=3).items():
        np.testing.assert_array_equal(streamed[layer], values)
        np.testing.assert_array_equal(in_memory[layer], values)
    # a missing file is found before the network runs; an unreadable one stops the run cleanly
    with pytest.raises(MissingFileError, match=r"images: 1 file\(s\) not found: .*nope.png"):
        extract(tiny, [*paths, folder / "nope.png"], out=tmp_path / "missing")
    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputFileError, match="broken.png: cannot be read as an image"):
        extract(tiny, [*paths, folder / "broken.png"], batch_size=3, out=tmp_path / "broken")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "img0.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="would both be image 'img0'"):
        extract(tiny, [paths[0], tmp_path / "other" / "img0.jpg"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts", "other", "photos"]
