"""Image parameterizations: what the optimizer steps in, other than the pixels themselves.

The optimization core (`optimize_pixels`) can optimize parameters p of an image x = decode(p)
instead of x. `FourierParameterization` is the one of Olah, Mordvintsev & Schubert (2017,
"Feature Visualization", Distill; the default of lucid / lucent): the image is the inverse
Fourier transform of a spectrum whose coefficients are scaled by 1 / frequency, mixed across
colour channels by the square root of natural images' colour covariance, and squashed into
[0, 1] by a sigmoid. A gradient step on p then moves every frequency and every decorrelated
colour axis at a comparable rate, instead of favouring the high spatial frequencies and the
correlated colour directions that a step on pixels favours, so the same optimizer reaches
smooth, coloured images without an explicit smoothness prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FourierParameterization", "COLOR_CORRELATION_SQRT"]

# Square root of the colour covariance of ImageNet pixels (columns: decorrelated axes, luminance
# first), the matrix published with lucid's Fourier parameterization.
COLOR_CORRELATION_SQRT = ((0.26, 0.09, 0.02),
                          (0.27, 0.00, -0.05),
                          (0.27, -0.09, 0.03))


@dataclass(frozen=True)
class FourierParameterization:
    """Pixels = sigmoid(colour matrix @ inverse FFT(spectrum / frequency^decay) / 4).

    Parameters
    ----------
    decay : float
        Power of the 1 / frequency scaling of the spectrum (1: natural images' amplitude
        spectrum; 0: a white spectrum).
    decorrelate : bool
        Mix the channels with `COLOR_CORRELATION_SQRT` (scaled to a largest column norm of 1);
        False leaves them independent.
    init_sd : float
        Standard deviation of the random spectrum that `random` draws (lucid: 0.01, a grey start).
    lr : float
        The step size Adam is used with on these parameters (lucid: 0.05).

    Notes
    -----
    The parameters of n images of H x W are a real tensor (n, 3, H, W // 2 + 1, 2): the real and
    imaginary parts of each channel's ``rfft2`` spectrum (orthonormal), divided by the scale.
    `encode` inverts `decode` for any image with values in (0, 1) (pixels at exactly 0 or 1 are
    first moved 1e-4 inside, the sigmoid never reaching them), so any synthesis can start from
    a photograph in this parameterization.

    Examples
    --------
    >>> import torch
    >>> from brainprobe.synth import FourierParameterization
    >>> fourier = FourierParameterization()
    >>> images = torch.rand(2, 3, 32, 32) * 0.9 + 0.05
    >>> bool(torch.allclose(fourier.decode(fourier.encode(images), (32, 32)), images, atol=1e-4))
    True
    """

    decay: float = 1.0
    decorrelate: bool = True
    init_sd: float = 0.01
    lr: float = 0.05

    def __post_init__(self):
        if self.decay < 0:
            raise ValueError(f"decay: expected a power >= 0, found {self.decay}")
        if self.init_sd <= 0 or self.lr <= 0:
            raise ValueError(f"init_sd and lr: expected positive values, found {self.init_sd}, {self.lr}")

    name = "fourier"

    def _scale(self, shape, device, dtype) -> torch.Tensor:
        height, width = shape
        fy = torch.fft.fftfreq(height, device=device, dtype=dtype)[:, None]
        fx = torch.fft.rfftfreq(width, device=device, dtype=dtype)[None, :]
        frequency = (fx.pow(2) + fy.pow(2)).sqrt().clamp_min(1.0 / max(height, width))
        return frequency.pow(-self.decay)  # (H, W // 2 + 1)

    def _colour(self, device, dtype) -> torch.Tensor:
        if not self.decorrelate:
            return torch.eye(3, device=device, dtype=dtype)
        matrix = torch.tensor(COLOR_CORRELATION_SQRT, device=device, dtype=dtype)
        return matrix / matrix.norm(dim=0).max()

    def decode(self, params: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """Images (n, 3, H, W) in (0, 1) from parameters (n, 3, H, W // 2 + 1, 2)."""
        spectrum = torch.view_as_complex(params.contiguous()) * self._scale(shape, params.device, params.dtype)
        decorrelated = torch.fft.irfft2(spectrum, s=tuple(shape), norm="ortho") / 4
        mixed = torch.einsum("ij,njhw->nihw", self._colour(params.device, params.dtype), decorrelated)
        return torch.sigmoid(mixed)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The parameters whose `decode` is ``images`` (n, 3, H, W) (values clipped into (0, 1))."""
        shape = tuple(images.shape[-2:])
        mixed = torch.logit(images.clamp(1e-4, 1 - 1e-4))
        decorrelated = torch.einsum("ij,njhw->nihw", torch.linalg.inv(self._colour(images.device, images.dtype)), mixed)
        spectrum = torch.fft.rfft2(4 * decorrelated, norm="ortho") / self._scale(shape, images.device, images.dtype)
        return torch.view_as_real(spectrum).contiguous()

    def random(self, n: int, shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
        """Images decoded from a random spectrum N(0, init_sd^2) (lucid's start: nearly grey)."""
        height, width = shape
        generator = torch.Generator().manual_seed(seed)
        params = self.init_sd * torch.randn(n, 3, height, width // 2 + 1, 2, generator=generator)
        return self.decode(params, shape)
