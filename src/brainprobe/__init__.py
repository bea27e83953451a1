"""brainprobe: compare how CNNs and the human visual cortex represent images.

Subpackages: `models`, `stimuli`, `adversarial`, `synth`, `data`, `roi`, `rsa`, `encoding`,
`stats`, `plotting`, `pipeline`. See the README for a tour.

The subpackages load on first use, as scipy's do: ``import brainprobe as bp`` is instant and
``bp.rsa.kind_similarity`` imports `brainprobe.rsa` (and torch, where it needs it) when first
touched.
"""

import importlib

from ._errors import BrainprobeInputError, ConfigError, InputFileError, MissingFileError

__version__ = "0.1.0"

_SUBPACKAGES = ("adversarial", "data", "encoding", "models", "pipeline", "plotting", "roi", "rsa", "stats",
                "stimuli", "synth")

__all__ = ["__version__", *_SUBPACKAGES, "BrainprobeInputError", "ConfigError", "InputFileError", "MissingFileError"]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")  # sets the attribute on this module too
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES})
