"""Reading images from folders and manifests (a saved StimulusSet's own files: `_stimulus_set`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .._errors import BrainprobeInputError, InputFileError, MissingFileError
from .._files import EXACT_FLOATS
from .._images import resize_and_crop
from ._stimulus_set import _ARRAYS_FILE, StimulusSet, load_stimuli, save_stimuli

__all__ = ["IMAGE_EXTENSIONS", "read_image", "load_folder", "load_manifest", "save_stimuli", "load_stimuli", "open_stimuli"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_image(path, *, background=(1.0, 1.0, 1.0), size: int | None = None) -> np.ndarray:
    """Read one image file as float32 RGB (H, W, 3) in [0, 1].

    Any PIL mode is accepted: grey (L, I;16, I, F), palette (P), RGBA/LA (composited over
    ``background``), CMYK, YCbCr. 16-bit images keep their full precision.

    Parameters
    ----------
    path : path
    background : RGB triple in [0, 1]
    size : int, optional
        The side the image will be resized to: a much larger image is reduced while it is read
        (JPEG decoding at a fraction of its size, then whole-pixel box averaging) to no less
        than twice ``size`` on its shorter side, so a folder of 5000-pixel photos does not
        fill the memory. The final resize is left to the caller.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the path and what went wrong (unreadable, truncated, a decompression bomb).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            if size is not None and image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK", "YCbCr"):
                image.draft(image.mode, (2 * size, 2 * size))
            image.load()
            image = ImageOps.exif_transpose(image)  # as viewers show it: a phone photo taken upright stays upright
            factor = min(image.size) // (2 * size) if size is not None else 1
            if factor > 1 and not image.mode.startswith(("I", "F", "P")):
                image = image.reduce(factor)
            return _to_rgb_array(image, background, path)
    except Image.DecompressionBombError as error:
        raise InputFileError(f"{path}: refused as a possible decompression bomb ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputFileError(f"{path}: cannot be read as an image ({type(error).__name__}: {error})") from error


def _to_rgb_array(image: Image.Image, background, path=None) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        grey = (array / _grey_scale(array, mode, path)).astype(np.float32)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:4]
        return (rgba[..., :3] * alpha + np.asarray(background, np.float32) * (1 - alpha)).astype(np.float32)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _grey_scale(array: np.ndarray, mode: str, path) -> float:
    """The full-scale value of a 16-bit, 32-bit integer or float grey image, by one fixed rule (never
    stretched per image, which would make a dim image as bright as a bright one):
    16-bit: 65535; 32-bit integer and float: 1 when every value lies in [0, 1], 255 when in
    [0, 255] (8-bit levels stored wide), 65535 when in [0, 65535]; anything else is refused."""
    if mode.startswith("I;16"):
        return 65535.0
    if array.size == 0 or not np.isfinite(array).all() or array.min() < 0:
        raise ValueError(f"{path}: a {mode} grey image with values outside [0, 65535] (found "
                         f"{np.nanmin(array) if array.size else 'none'}..{np.nanmax(array) if array.size else 'none'}); "
                         "expected levels in [0, 1], [0, 255] or [0, 65535]")
    top = float(array.max())
    for scale in ((1.0,) if mode == "F" else ()) + (255.0, 65535.0):
        if top <= scale:
            return scale
    raise ValueError(f"{path}: a {mode} grey image with values up to {top:g}; expected levels in [0, 1], [0, 255] or "
                     "[0, 65535]")


# the most memory one image may take while it is resized (float32): a 1 x 60000 pixel strip
# resized to 224 on its shorter side would need tens of GiB
MAX_RESIZE_BYTES = 2 * 1024**3


def _check_elongation(tensor: torch.Tensor, path: Path, size: int) -> None:
    h, w = tensor.shape[-2:]
    if min(h, w) > 0:
        needed = 3 * 4 * size * size * max(h, w) / min(h, w)
        if needed > MAX_RESIZE_BYTES:
            raise ValueError(f"{path}: a {h} x {w} image would take {needed / 1024**3:.1f} GiB resized to {size} on "
                             f"its shorter side (more than {MAX_RESIZE_BYTES / 1024**3:.0f} GiB); crop it to a less "
                             "elongated shape, or choose a smaller size")


def _read_stack(paths: list[Path], size: int | None) -> torch.Tensor:
    """Every image read, resized and written into one preallocated (n, 3, H, W) tensor, one at a
    time: the peak is the stack plus one image (10,000 images at 224 pixels are 6 GB as float32;
    a list of them resized, then concatenated, held three times that)."""
    stacked = None
    for i, path in enumerate(paths):
        tensor = torch.from_numpy(read_image(path, size=size)).permute(2, 0, 1).unsqueeze(0)
        if size is not None:
            _check_elongation(tensor, path, int(size))
            tensor = resize_and_crop(tensor, int(size)).clamp(0.0, 1.0)
        if stacked is None:
            stacked = torch.empty((len(paths), *tensor.shape[1:]), dtype=tensor.dtype)
        elif tensor.shape[1:] != stacked.shape[1:]:
            raise BrainprobeInputError(
                f"images differ in size ({paths[0]} is {stacked.shape[-2]}x{stacked.shape[-1]}, {path} is "
                f"{tensor.shape[-2]}x{tensor.shape[-1]}); pass size=224 (or another side) "
                "to resize the shorter side and crop the centre"
            )
        stacked[i] = tensor[0]
    return stacked if stacked is not None else torch.zeros(0, 3, size or 1, size or 1)


def load_folder(folder, *, size: int | None = None, recursive: bool = True) -> StimulusSet:
    """Load every image in a folder (sorted by path) as a `StimulusSet`.

    Parameters
    ----------
    folder : path
    size : int, optional
        Resize the shorter side to ``size`` and crop the centre square; required when the images
        differ in size.
    recursive : bool
        Also read sub-folders; an image's first sub-folder name becomes its ``category``
        (the torchvision ImageFolder convention). A first sub-folder named ``RE``, ``AN`` or
        ``AI`` is the image's ``kind`` instead, and an AN/AI image's ``source_id`` is the RE
        image at the same path under ``RE/`` (``AN/dog.png`` derives from ``RE/dog.png``).

    Returns
    -------
    StimulusSet
        ``image_id`` is the path relative to ``folder`` without extension (``RE/dog``): the
        id a BIDS ``stim_file`` of that path gives (`brainprobe.data.load_trial_table`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"image folder not found: {folder}")
    paths = _image_files(folder, recursive)
    if not paths:
        raise BrainprobeInputError(f"{folder}: no image files found (extensions {', '.join(IMAGE_EXTENSIONS)})")
    relative = [p.relative_to(folder) for p in paths]
    ids = [r.with_suffix("").as_posix() for r in relative]
    seen: dict[str, Path] = {}
    for image_id, path in zip(ids, paths, strict=True):
        if image_id in seen:
            raise BrainprobeInputError(f"{folder}: {seen[image_id].name} and {path.name} would both be image {image_id!r}; "
                             "rename one (image ids are file names without extension)")
        seen[image_id] = path
    table = pd.DataFrame(
        {
            "image_id": [r.with_suffix("").as_posix() for r in relative],
            "category": [r.parts[0] if len(r.parts) > 1 else "" for r in relative],
            "file": [str(p) for p in paths],
        }
    )
    kinds = [r.parts[0] if len(r.parts) > 1 and r.parts[0] in _KIND_FOLDERS else "" for r in relative]
    if any(kinds):
        ids = set(table["image_id"])
        table["kind"] = [k or "RE" for k in kinds]
        table["category"] = ["" if k else c for k, c in zip(kinds, table["category"], strict=True)]
        sources = []
        for kind, image_id in zip(kinds, table["image_id"], strict=True):
            source = "RE/" + image_id.split("/", 1)[1] if kind in ("AN", "AI") else image_id
            sources.append(source if source in ids else image_id)
        table["source_id"] = sources
    images = _read_stack(paths, size)
    return StimulusSet(images, table)


_KIND_FOLDERS = ("RE", "AN", "AI")


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    """The image files under ``folder``, following linked sub-folders (each real folder once); a
    link whose target is missing is an error naming it, never skipped without a word."""
    found, broken, visited = [], [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:  # a link back up the tree: read each folder once
            dirs[:] = []
            continue
        visited.add(real)
        dirs.sort()
        if not recursive:
            dirs[:] = []
        images = set(files)
        for name in sorted(os.listdir(root)):
            path = Path(root) / name
            if path.is_symlink() and not path.exists():  # os.walk lists a dangling link nowhere useful
                broken.append(path)
            elif name in images and path.suffix.lower() in IMAGE_EXTENSIONS:
                found.append(path)
    if broken:
        names = ", ".join(str(p.relative_to(folder)) for p in sorted(broken)[:5])
        raise ValueError(f"{folder}: {len(broken)} link(s) point to missing files or folders ({names}); "
                         "fix or remove them")
    return sorted(found)
_NAME_COLUMNS = ("file", "path", "image_id", "source_id", "kind", "category")


def load_manifest(csv_path, *, size: int | None = None, path_column: str = "file") -> StimulusSet:
    """Load the images listed in a CSV manifest; every other column goes into the table.

    Parameters
    ----------
    csv_path : path
        A CSV with a ``file`` column (or ``path``): image paths, relative to the CSV's folder
        unless absolute. Optional columns: ``image_id`` (default: the file stem), ``kind``,
        ``source_id``, ``category``, ``class_index``, ``target_class`` and any others.
    size : int, optional
        As in `load_folder`.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MissingFileError(f"manifest not found: {csv_path}")
    header = pd.read_csv(csv_path, nrows=0).columns
    names = [c for c in header if c in _NAME_COLUMNS]  # text, always: an image called "NaN" or "007" keeps its name
    table = pd.read_csv(csv_path, keep_default_na=False, dtype={c: str for c in names},
                        na_values={c: [] if c in names else ["NaN"] for c in header}, **EXACT_FLOATS)
    if path_column not in table and "path" in table:
        path_column = "path"
    if path_column not in table:
        raise InputFileError(f"{csv_path}: expected a column {path_column!r} (or 'path') with image paths; columns are {list(table.columns)}")
    paths = []
    for row, value in enumerate(table[path_column]):
        path = Path(str(value))
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise MissingFileError(f"{csv_path}, row {row + 2}, column {path_column!r}: file not found: {path}")
        paths.append(path)
    if "image_id" not in table:
        table.insert(0, "image_id", [p.stem for p in paths])
    table[path_column] = [str(p) for p in paths]
    images = _read_stack(paths, size)
    return StimulusSet(images, table)


def open_stimuli(source, *, size: int | None = None):
    """Images from wherever they are: a folder saved by `save_stimuli` (exact, with its table),
    a CSV manifest (`load_manifest`) or a folder of image files (`load_folder`)."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() == ".csv":
        return load_manifest(path, size=size)
    if (path / _ARRAYS_FILE).is_file():
        return load_stimuli(path)
    if not path.is_dir():
        found = "a file" if path.is_file() else "nothing there"
        raise BrainprobeInputError(f"{path}: expected a folder of images, a CSV manifest (.csv) or a folder written "
                                   f"by save_stimuli; found {found}")
    return load_folder(path, size=size)
