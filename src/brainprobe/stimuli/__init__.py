"""Image sets: the `StimulusSet`, loading from folders and manifests, saving, bundled samples."""

from ._io import (
    IMAGE_EXTENSIONS,
    load_folder,
    load_manifest,
    load_stimuli,
    open_stimuli,
    read_image,
    save_stimuli,
)
from ._samples import SAMPLE_IMAGE_IDS, sample_images, sample_patches
from ._stimulus_set import TABLE_COLUMNS, StimulusSet

__all__ = [
    "IMAGE_EXTENSIONS",
    "SAMPLE_IMAGE_IDS",
    "StimulusSet",
    "TABLE_COLUMNS",
    "load_folder",
    "load_manifest",
    "load_stimuli",
    "open_stimuli",
    "read_image",
    "sample_images",
    "sample_patches",
    "save_stimuli",
]
