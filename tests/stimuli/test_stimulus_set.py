import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from brainprobe.stimuli import (
    StimulusSet,
    load_folder,
    load_manifest,
    load_stimuli,
    read_image,
    sample_images,
)


def _write(path, array, mode=None):
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


@pytest.fixture
def mixed_mode_folder(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    _write(tmp_path / "a_rgb.png", rgb)
    _write(tmp_path / "b_grey.png", rgb, "L")
    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c_rgba.png")
    _write(tmp_path / "d_palette.png", rgb, "P")
    _write(tmp_path / "e_rgb.jpg", rgb)
    grey16 = (rng.random((20, 30)) * 65535).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "f_grey16.png")
    return tmp_path, rgb, grey16


def test_any_pil_mode_loads_as_rgb(mixed_mode_folder):
    folder, rgb, grey16 = mixed_mode_folder
    stim = load_folder(folder)
    assert stim.images.shape == (6, 3, 20, 30)
    assert stim.images.dtype == torch.float32
    assert 0 <= float(stim.images.min()) and float(stim.images.max()) <= 1
    by_id = dict(zip(stim.image_ids, stim.images, strict=True))
    np.testing.assert_allclose(by_id["a_rgb"].permute(1, 2, 0).numpy(), rgb / 255.0, atol=1e-7)
    grey = by_id["b_grey"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    # RGBA at alpha 128 is composited over white
    expected = rgb / 255.0 * (128 / 255) + (1 - 128 / 255)
    np.testing.assert_allclose(by_id["c_rgba"].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    # 16-bit grey keeps its precision
    np.testing.assert_allclose(by_id["f_grey16"][0].numpy(), grey16 / 65535.0, atol=1e-6)


def test_unreadable_file_error_names_the_path(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="broken.png: cannot be read as an image"):
        load_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_sizes_must_agree_unless_resized(tmp_path):
    _write(tmp_path / "small.png", np.zeros((10, 10, 3), np.uint8))
    _write(tmp_path / "large.png", np.zeros((20, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="pass size="):
        load_folder(tmp_path)
    assert load_folder(tmp_path, size=8).images.shape == (2, 3, 8, 8)


def test_subfolders_give_categories(tmp_path):
    for category in ("dog", "car"):
        (tmp_path / category).mkdir()
        _write(tmp_path / category / "x.png", np.zeros((4, 4, 3), np.uint8))
    stim = load_folder(tmp_path)
    assert stim.image_ids == ["car/x", "dog/x"]
    assert stim.table["category"].tolist() == ["car", "dog"]


def test_manifest_loads_table_columns(tmp_path):
    for name in ("one", "two"):
        _write(tmp_path / f"{name}.png", np.full((6, 6, 3), 50, np.uint8))
    pd.DataFrame({"file": ["one.png", "two.png"], "kind": ["RE", "AN"], "source_id": ["one", "one"],
                  "class_index": [3, 3], "rating": [0.5, 0.25]}).to_csv(tmp_path / "m.csv", index=False)
    stim = load_manifest(tmp_path / "m.csv")
    assert stim.image_ids == ["one", "two"]
    assert stim.table["kind"].tolist() == ["RE", "AN"]
    assert stim.table["rating"].tolist() == [0.5, 0.25]
    pd.DataFrame({"file": ["one.png", "gone.png"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(FileNotFoundError, match=r"bad.csv, row 3, column 'file'.*gone.png"):
        load_manifest(tmp_path / "bad.csv")


def test_save_load_round_trip_is_exact(tmp_path):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 9, 7, generator=generator)
    table = pd.DataFrame({
        "image_id": ["re/1", "an 1", "ai:1"], "kind": ["RE", "AN", "AI"], "source_id": ["re/1"] * 3,
        "category": ["", "dog", "dog"], "class_index": [5, 5, 5], "target_class": [-1, 5, 7],
        "p_target": [np.nan, 0.991234567890123, 0.9999], "success": [True, True, False],
    })
    stim = StimulusSet(images, table)
    folder = stim.save(tmp_path / "out")
    loaded = load_stimuli(folder)
    assert loaded.equals(stim)
    assert torch.equal(loaded.images, images)  # bit-exact floats, not the 8-bit PNGs
    assert len(list((folder / "images").rglob("*.png"))) == 3  # "re/1" in a sub-folder re/
    # the saved PNGs are the 8-bit rounding of the images
    png = np.asarray(Image.open(folder / loaded_png(folder, "an 1")))
    np.testing.assert_array_equal(png, np.round(images[1].permute(1, 2, 0).numpy() * 255).astype(np.uint8))


def loaded_png(folder, image_id):
    table = pd.read_csv(folder / "stimuli.csv", keep_default_na=False)
    return table.set_index("image_id").loc[image_id, "png"]


def test_save_refuses_to_overwrite(tmp_path):
    stim = StimulusSet(torch.rand(1, 3, 4, 4))
    stim.save(tmp_path / "out")
    marker = tmp_path / "out" / "stimuli.csv"
    before = marker.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        StimulusSet(torch.zeros(1, 3, 4, 4)).save(tmp_path / "out")
    assert marker.read_bytes() == before
    StimulusSet(torch.zeros(1, 3, 4, 4)).save(tmp_path / "out", overwrite=True)
    assert float(load_stimuli(tmp_path / "out").images.max()) == 0.0


def test_table_validation():
    with pytest.raises(ValueError, match="unique"):
        StimulusSet(torch.rand(2, 3, 4, 4), {"image_id": ["a", "a"]})
    with pytest.raises(ValueError, match="one row per image"):
        StimulusSet(torch.rand(2, 3, 4, 4), {"image_id": ["a"]})
    stim = StimulusSet(torch.rand(2, 3, 4, 4), {"image_id": ["a", "b"]})
    assert stim.table["source_id"].tolist() == ["a", "b"]
    assert stim.table["class_index"].tolist() == [-1, -1]


def test_indexing_select_and_concat():
    stim = StimulusSet(torch.rand(4, 3, 4, 4), {"image_id": list("abcd"), "kind": ["RE", "AN", "AI", "RE"]})
    assert stim.select(kind="RE").image_ids == ["a", "d"]
    assert stim.select(kind=["AN", "AI"]).image_ids == ["b", "c"]
    assert stim[1:3].image_ids == ["b", "c"]
    assert torch.equal(stim.by_ids(["d", "a"]).images[0], stim.images[3])
    both = StimulusSet.concat([stim[:2], stim[2:]])
    assert both.equals(stim)
    with pytest.raises(ValueError, match="unique"):
        StimulusSet.concat([stim, stim])


def test_sample_images_are_natural_colour_photos():
    stim = sample_images(size=64)
    assert len(stim) >= 12
    assert stim.images.shape[1:] == (3, 64, 64)
    # colour, not grey copied to 3 channels (spread exactly 0); the Hubble field is mostly black
    channel_spread = (stim.images.max(dim=1).values - stim.images.min(dim=1).values).mean(dim=(1, 2))
    assert (channel_spread > 0.01).all(), channel_spread
    assert stim.table["category"].ne("").all()


def test_load_stimuli_mapped_reads_no_image_until_used(tmp_path):
    # a study's cached stimuli come back as a memory map: 10,000 images of 224 pixels are 6 GB
    import pickle
    import tracemalloc

    from brainprobe.stimuli import load_stimuli, save_stimuli
    from brainprobe.stimuli._stimulus_set import release_pages

    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((40, 3, 160, 160), dtype=np.float32))  # 12 MB
    stim = StimulusSet(images, {"image_id": [f"i{k:02d}" for k in range(40)], "category": ["a", "b"] * 20})
    save_stimuli(stim, tmp_path / "saved")
    tracemalloc.start()
    try:
        mapped = load_stimuli(tmp_path / "saved", mmap=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * images.numpy().nbytes  # checked a block at a time, never read whole
    assert isinstance(mapped._mapped, np.memmap)
    assert mapped.equals(load_stimuli(tmp_path / "saved")) and mapped.equals(stim)
    release_pages(mapped)  # the pages read are given back, and read again when used
    assert torch.equal(mapped[[3, 7]].images, images[[3, 7]])
    assert pickle.loads(pickle.dumps(mapped)).equals(stim)  # the map itself is not pickled twice


def test_load_stimuli_mapped_checks_pixel_range(tmp_path):
    from brainprobe.stimuli import load_stimuli, save_stimuli

    save_stimuli(StimulusSet(torch.rand(3, 3, 8, 8)), tmp_path / "saved")
    path = tmp_path / "saved" / "stimuli.npz"
    with np.load(path) as found:
        arrays = {name: found[name] for name in found.files}
    arrays["images"][1, 0, 2, 2] = 7.0
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"images 0..2: expected finite pixel values in \[0, 1\]"):
        load_stimuli(tmp_path / "saved", mmap=True)
