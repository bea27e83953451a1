"""brainprobe: compare how CNNs and the human visual cortex represent images.

Subpackages: `models`, `stimuli`, `adversarial`, `synth`, `data`, `roi`, `rsa`, `encoding`,
`stats`, `plotting`, `pipeline`. See the README for a tour.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
