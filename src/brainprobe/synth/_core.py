"""The optimization core: a batch of images optimized in pixel space, each stopping on its own.

Every synthesis method in brainprobe (adversarial images now; inversion, metamers and textures
as they land) is an objective handed to `optimize_pixels`. The loop owns what they share:
per-image stopping inside a batch, pixel bounds, the optimizer state of each image, devices,
progress, loss history, and the 8-bit check of what will be saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._device import resolve_device
from .._files import replace_atomically
from .._progress import tqdm
from ._parameterization import FourierParameterization

__all__ = ["OptimizationResult", "optimize_pixels", "quantize_8bit", "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd", "adagrad_momentum", "lbfgs")
LINE_SEARCH_EVALUATIONS = 25  # at most per L-BFGS iteration (PyTorch's strong-Wolfe default)

# objective(images (n_active, 3, H, W), index (n_active,) into the batch) -> (loss (n_active,), aux dict)
Objective = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]
# criterion(aux, index) -> bool tensor (n_active,): the image is finished
Criterion = Callable[[dict, torch.Tensor], torch.Tensor]


def _save_checkpoint(path: Path, x, active, converged, updates, state, history) -> None:
    content = {"x": x.cpu(), "active": active.cpu(), "converged": converged.cpu(), "updates": updates.cpu(),
               "first": state.first.cpu(), "second": state.second.cpu(), "steps": state.steps.cpu(),
               "history": torch.from_numpy(np.asarray(history)) if history else torch.zeros(0)}
    replace_atomically(path, lambda temporary: torch.save(content, temporary))


def _restore_checkpoint(path: Path, x, active, converged, updates, state, history) -> None:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if tuple(saved["x"].shape) != tuple(x.shape):
        raise ValueError(f"{path}: checkpoint of images {tuple(saved['x'].shape)}, this run has {tuple(x.shape)}")
    for target, key in ((x, "x"), (active, "active"), (converged, "converged"), (updates, "updates"),
                        (state.first, "first"), (state.second, "second"), (state.steps, "steps")):
        target.copy_(saved[key].to(target.device))
    history.extend(list(saved["history"].numpy()))


def _aux_row(aux: dict, index: torch.Tensor, n_images: int) -> dict[str, np.ndarray]:
    """The per-image numbers in ``aux`` (1-D tensors, one value per active image) as full rows,
    NaN for the images not in ``index``: what `OptimizationResult.aux_history` keeps."""
    rows = {}
    for key, value in aux.items():
        if isinstance(value, torch.Tensor) and value.shape == (len(index),) and value.is_floating_point():
            row = np.full(n_images, np.nan)
            row[index.cpu().numpy()] = value.detach().double().cpu().numpy()
            rows[key] = row
    return rows


def _stack_aux(aux_rows: list[dict], n_images: int) -> dict[str, np.ndarray]:
    keys = sorted({key for row in aux_rows for key in row})
    missing = np.full(n_images, np.nan)
    return {key: np.stack([row.get(key, missing) for row in aux_rows]) for key in keys}


def _run_lbfgs(x, objective, criterion, lr, max_iter, bounds, progress, desc, decode) -> OptimizationResult:
    """L-BFGS with one optimizer per image: its own curvature history and its own strong-Wolfe line
    search (a line search shared by the batch steps every image by the step the sum of losses
    accepts). Pixels are clipped to ``bounds`` inside the objective and after each step; an image
    that meets the criterion stops on its own."""
    n_images = len(x)
    rows = [x[i:i + 1].detach().clone().requires_grad_(True) for i in range(n_images)]
    # max_iter=1 makes each call one L-BFGS iteration; PyTorch's max_eval defaults to
    # max_iter * 5 // 4 = 1 evaluation per call, which leaves the line search no trial beyond
    # its first: a step that overshoots is then rejected (t = 0) and the image never moves again.
    # Allow the line search its own budget of evaluations.
    optimizers = [torch.optim.LBFGS([row], lr=lr, max_iter=1, max_eval=1 + LINE_SEARCH_EVALUATIONS, history_size=20,
                                    line_search_fn="strong_wolfe") for row in rows]
    history: list[np.ndarray] = []
    aux_rows: list[dict] = []
    converged = torch.zeros(n_images, dtype=torch.bool, device=x.device)
    active = torch.ones(n_images, dtype=torch.bool, device=x.device)
    n_iter = np.zeros(n_images, dtype=int)

    def closure_for(i):
        single = torch.tensor([i], device=x.device)

        def closure():
            optimizers[i].zero_grad()
            loss, _ = objective(rows[i].clamp(*bounds), single)
            loss.sum().backward()
            return loss.sum()

        return closure

    closures = [closure_for(i) for i in range(n_images)]
    for _ in tqdm(range(max_iter), desc=desc, unit="step", disable=None if progress is None else not progress):
        index = torch.nonzero(active).flatten()
        if len(index) == 0:
            break
        for i in index.tolist():
            optimizers[i].step(closures[i])
            with torch.no_grad():
                rows[i].clamp_(*bounds)
            n_iter[i] += 1
        with torch.no_grad():
            current = torch.cat([rows[i] for i in index.tolist()])
            loss, aux = objective(current, index)
        row = np.full(n_images, np.nan)
        row[index.cpu().numpy()] = loss.detach().double().cpu().numpy()
        history.append(row)
        aux_rows.append(_aux_row(aux, index, n_images))
        if criterion is not None:
            met = criterion(aux, index).to(torch.bool)
            converged[index[met]] = True
            active[index[met]] = False
    with torch.no_grad():
        images = decode(torch.cat([row.detach() for row in rows])).cpu()
    return OptimizationResult(images=images, converged=converged.cpu().numpy(), n_iter=n_iter,
                              n_iter_8bit=np.zeros(n_images, dtype=int), loss_history=np.asarray(history),
                              aux_history=_stack_aux(aux_rows, n_images))


def quantize_8bit(images: torch.Tensor) -> torch.Tensor:
    """Round images in [0, 1] to the 8-bit grid k / 255 (what a PNG stores)."""
    return torch.round(images.clamp(0, 1) * 255.0) / 255.0


class _StraightThroughQuantize(torch.autograd.Function):
    # forward: the 8-bit image; backward: the gradient passes as if rounding were the identity
    @staticmethod
    def forward(ctx, images):
        return quantize_8bit(images)

    @staticmethod
    def backward(ctx, grad):
        return grad


@dataclass
class OptimizationResult:
    """What `optimize_pixels` returns.

    Attributes
    ----------
    images : tensor (n_images, 3, H, W) on the CPU
        Final images: each is exactly the image on which its criterion was last checked.
    converged : bool array (n_images,)
        The criterion was met (on the 8-bit image when ``quantize=True``).
    n_iter : int array (n_images,)
        Updates applied to each image before it stopped (float phase + 8-bit phase).
    n_iter_8bit : int array (n_images,)
        Updates of the 8-bit phase (0 when rounding kept the criterion met).
    loss_history : float array (n_steps, n_images)
        Loss at each step; NaN once an image has stopped.
    aux_history : dict of str to float array (n_steps, n_images)
        Every per-image number the objective returned in its ``aux`` dict (a 1-D float tensor
        with one value per active image), at each step, aligned with ``loss_history``; NaN
        where an image was not active or the entry was absent (what progress plots draw).
    """

    images: torch.Tensor
    converged: np.ndarray
    n_iter: np.ndarray
    n_iter_8bit: np.ndarray
    loss_history: np.ndarray = field(repr=False)
    aux_history: dict = field(default_factory=dict, repr=False)


class _PerImageOptimizer:
    """Adam, SGD or 004's AdaGrad-momentum with per-image state, so any subset can be stepped.

    ``adagrad_momentum`` is Algorithm 1 of Mahendran & Vedaldi (paper 004): G_t = rho G_{t-1} + g^2,
    eta_t = 1 / (1 / eta_0 + sqrt(G_t)), mu_t = rho mu_{t-1} - eta_t g, x += mu_t, with rho = 0.9.
    It is not scale-invariant, so it runs in the units it was designed for: ``units`` converts
    pixel units to them (255 for the paper's 0-255 intensities; ``lr`` is eta_0 in those units).
    """

    def __init__(self, name: str, images: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8,
                 rho: float = 0.9, units=1.0):
        if name not in OPTIMIZERS or name == "lbfgs":
            raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, found {name!r}")
        if lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, found {lr}")
        self.name, self.lr, self.betas, self.eps, self.rho = name, lr, betas, eps, rho
        self.units = units
        self.first = torch.zeros_like(images)
        self.second = torch.zeros_like(images)
        self.steps = torch.zeros(len(images), dtype=torch.long, device=images.device)

    def reset(self, index: torch.Tensor) -> None:
        self.first[index] = 0
        self.second[index] = 0
        self.steps[index] = 0

    def direction(self, index: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """The update to add to images[index] (a descent step on the loss)."""
        if self.name == "sgd":
            return -self.lr * grad
        if self.name == "adagrad_momentum":
            paper_grad = grad / self.units  # d loss / d z
            accumulated = self.rho * self.second[index] + paper_grad * paper_grad
            rate = 1.0 / (1.0 / self.lr + accumulated.sqrt())
            momentum = self.rho * self.first[index] - rate * paper_grad
            self.second[index], self.first[index] = accumulated, momentum
            return momentum / self.units
        beta1, beta2 = self.betas
        self.steps[index] += 1
        t = self.steps[index].to(grad.dtype).view(-1, 1, 1, 1)
        first = beta1 * self.first[index] + (1 - beta1) * grad
        second = beta2 * self.second[index] + (1 - beta2) * grad * grad
        self.first[index], self.second[index] = first, second
        corrected = (first / (1 - beta1**t)) / ((second / (1 - beta2**t)).sqrt() + self.eps)
        return -self.lr * corrected


def _progress_note(bar, converged, aux, watch) -> str:
    """The bar's postfix: images done and, with ``watch = (aux key, stop value)``, the lowest value
    of that number among the images still running (the last one measured, for numbers measured
    every few steps), against the value they stop at."""
    note = f"done {int(converged.sum())}/{len(converged)}"
    if watch is None:
        return note
    key, target = watch
    values = aux.get(key) if isinstance(aux, dict) else None
    if values is not None:
        values = torch.as_tensor(values).detach().double().flatten()
        values = values[~torch.isnan(values)]
        if len(values):
            bar.brainprobe_watch = f"lowest {key} {float(values.min()):.3f} (each stops at {target:g})"
    return f"{note}, {getattr(bar, 'brainprobe_watch', f'each stops at {key} {target:g}')}"


def _run_phase(x, active, objective, criterion, optimizer, bounds, max_iter, straight_through, bar, history,
               project=None, converged=None, updates=None, on_step=None, aux_rows=None, watch=None, min_iter=0):
    converged = torch.zeros(len(x), dtype=torch.bool, device=x.device) if converged is None else converged
    updates = torch.zeros(len(x), dtype=torch.long, device=x.device) if updates is None else updates
    done = int(updates.max()) if len(updates) else 0
    for _ in range(max_iter - done + 1):  # the extra pass checks the images after the last update
        index = torch.nonzero(active).flatten()
        if len(index) == 0:
            break
        current = x[index].detach().requires_grad_(True)
        seen = _StraightThroughQuantize.apply(current) if straight_through else current
        loss, aux = objective(seen, index)
        if loss.shape != (len(index),):
            raise ValueError(f"objective must return one loss per image, shape ({len(index)},), found {tuple(loss.shape)}")
        met = criterion(aux, index).to(torch.bool) if criterion is not None else torch.zeros_like(index, dtype=torch.bool)
        if min_iter > 0:  # an image that already meets its criterion at the start still takes min_iter steps
            met = met & (updates[index] >= min_iter)
        row = np.full(len(x), np.nan)
        row[index.cpu().numpy()] = loss.detach().double().cpu().numpy()
        history.append(row)
        if aux_rows is not None:
            aux_rows.append(_aux_row(aux, index, len(x)))
        converged[index[met]] = True
        active[index[met]] = False
        moving = ~met
        if not bool(moving.any()) or bool((updates[index[moving]] >= max_iter).all()):
            break
        (grad,) = torch.autograd.grad(loss.sum(), current)
        step_index = index[moving]
        with torch.no_grad():
            stepped = x[step_index] + optimizer.direction(step_index, grad[moving])
            if project is not None:
                stepped = project(stepped)
            x[step_index] = stepped.clamp(*bounds)
        updates[step_index] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(_progress_note(bar, converged, aux, watch))
        if on_step is not None:
            on_step(converged, updates)
    return converged, updates


def optimize_pixels(
    start: torch.Tensor,
    objective: Objective,
    *,
    criterion: Criterion | None = None,
    optimizer: str = "adam",
    lr: float = 0.01,
    max_iter: int = 500,
    bounds: tuple[float, float] = (0.0, 1.0),
    quantize: bool = False,
    max_iter_8bit: int = 200,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    units=1.0,
    parameterization: FourierParameterization | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    desc: str = "optimize",
    watch: tuple[str, float] | None = None,
    min_iter: int = 0,
) -> OptimizationResult:
    """Optimize a batch of images against a per-image objective, each stopping on its own.

    At every step the objective and the criterion are evaluated on the active images; an image
    that meets its criterion is frozen exactly as evaluated and leaves the batch (later steps
    cost less), the others take one optimizer step and are clipped to ``bounds``. The batch ends
    when every image has stopped or has had ``max_iter`` updates.

    With ``quantize=True`` the images are then rounded to 8 bits; an image whose rounded
    version fails its criterion goes on optimizing on the 8-bit grid (the forward pass sees the
    rounded image, the gradient passes straight through the rounding) for up to
    ``max_iter_8bit`` updates. The returned images are then exactly the 8-bit images checked.

    Parameters
    ----------
    start : tensor (n_images, 3, H, W)
        Starting images (not modified).
    objective : callable
        ``objective(images, index) -> (loss, aux)``: ``images`` are the active images
        (n_active, 3, H, W), ``index`` their rows in the batch; ``loss`` (n_active,) is
        minimized; ``aux`` is a dict handed to ``criterion``.
    criterion : callable, optional
        ``criterion(aux, index) -> bool tensor (n_active,)``; None runs all ``max_iter`` steps.
    optimizer : {"adam", "sgd", "adagrad_momentum", "lbfgs"}
        State is kept per image. ``adagrad_momentum`` is paper 004's Algorithm 1. ``lbfgs`` is
        PyTorch's L-BFGS (strong-Wolfe line search), one optimizer per image (its own curvature
        history and line search; images stop one by one); ``quantize`` and ``checkpoint`` do not
        apply.
    lr : float
        Step size in pixel units (for ``adagrad_momentum``: eta_0 in ``units``).
    max_iter, max_iter_8bit : int
    bounds : (float, float)
    quantize : bool
    project : callable, optional
        Applied to updated images before clipping to ``bounds`` (e.g. 004's B+ pixel-norm bound).
    units : float or tensor (1, 3, 1, 1)
        For ``adagrad_momentum``: its units per pixel unit (255: paper 004's 0-255 intensities).
    parameterization : FourierParameterization, optional
        Optimize parameters p of the images instead of their pixels: ``start`` is encoded, the
        objective sees ``parameterization.decode(p)``, and the decoded images are returned.
        The parameterization keeps pixels inside (0, 1) itself, so ``bounds`` only clip the
        start; ``quantize`` and ``project`` (pixel-space operations) do not apply. ``lr`` is
        then a step in parameter units (`FourierParameterization.lr` with Adam).
    checkpoint : path, optional
        Save the optimization state there every ``checkpoint_every`` steps; if the file exists
        when the call starts, continue from it (same objective and settings assumed; the start
        images must have the same shape). Removed when the optimization finishes.
    device : str or torch.device, optional
        Default CUDA when available. The objective must work on that device.
    progress : bool, optional
        Progress bar over steps; default when running in a terminal.
    desc : str
        Progress bar label.
    watch : (str, float), optional
        An ``aux`` key and the value images stop at (``("p_target", 0.99)``): the progress bar
        shows the images done and the lowest value among the images still running. With a
        ``criterion`` the bar counts steps without an ETA: ``max_iter`` is only a ceiling.
    min_iter : int
        No image stops before this many updates, even if its start meets the criterion (a
        synthesis that returns its own start has found nothing).

    Returns
    -------
    OptimizationResult
    """
    if start.ndim != 4:
        raise ValueError(f"start: expected (n_images, 3, H, W), found {tuple(start.shape)}")
    if max_iter < 0 or max_iter_8bit < 0:
        raise ValueError("max_iter and max_iter_8bit must be >= 0")
    device = resolve_device(device)
    x = start.detach().to(device=device, dtype=torch.float32).clone().clamp(*bounds)
    decode = _identity
    if parameterization is not None:
        if quantize or project is not None:
            raise ValueError("quantize and project act on pixels: they do not apply with a parameterization")
        if optimizer == "adagrad_momentum":  # its step is in paper pixel units (0-255), meaningless on a spectrum
            raise ValueError("optimizer='adagrad_momentum' works in pixel units: use 'adam' with a parameterization")
        x, objective, decode = _reparameterize(x, objective, parameterization)
        bounds = (-float("inf"), float("inf"))
    if optimizer == "lbfgs":
        if quantize or checkpoint is not None:
            raise ValueError("optimizer='lbfgs' optimizes the whole batch jointly: quantize and checkpoint do not apply")
        return _run_lbfgs(x, objective, criterion, lr, max_iter, bounds, progress, desc, decode)
    state = _PerImageOptimizer(optimizer, x, lr, units=torch.as_tensor(units, dtype=x.dtype, device=device))
    history: list[np.ndarray] = []
    aux_rows: list[dict] = []
    active = torch.ones(len(x), dtype=torch.bool, device=device)
    converged = torch.zeros(len(x), dtype=torch.bool, device=device)
    updates = torch.zeros(len(x), dtype=torch.long, device=device)
    on_step = None
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if checkpoint.is_file():
            _restore_checkpoint(checkpoint, x, active, converged, updates, state, history)
            aux_rows.extend({} for _ in history)  # the aux numbers of the steps before the restart are not kept

        def on_step(done_mask, counts):
            if int(counts.max()) % checkpoint_every == 0:
                _save_checkpoint(checkpoint, x, active, done_mask, counts, state, history)

    # with a stopping criterion max_iter is a ceiling, not the expected length: no ETA towards it
    stops = {} if criterion is None else {"bar_format": "{desc}: step {n_fmt} of at most {total_fmt} "
                                                        "[{elapsed}, {rate_fmt}{postfix}]"}
    bar = tqdm(total=max_iter, initial=int(updates.max()), desc=desc, unit="step",
               disable=None if progress is None else not progress, **stops)
    with bar:
        converged, updates = _run_phase(x, active, objective, criterion, state, bounds, max_iter, False, bar, history,
                                        project, converged, updates, on_step, aux_rows, watch, min_iter)
        updates_8bit = torch.zeros_like(updates)
        if quantize:
            with torch.no_grad():
                x.copy_(quantize_8bit(x))
            if criterion is not None:
                # re-check every converged image on its 8-bit version; failures continue on the grid
                recheck = converged.clone()
                state.reset(torch.nonzero(recheck).flatten())  # fresh moments for the 8-bit phase
                converged_8bit, updates_8bit = _run_phase(
                    x, recheck, objective, criterion, state, bounds, max_iter_8bit, True, bar, history, project,
                    aux_rows=aux_rows, watch=watch)
                converged = converged & converged_8bit
            with torch.no_grad():
                x.copy_(quantize_8bit(x))
    if checkpoint is not None and checkpoint.is_file():
        checkpoint.unlink()
    with torch.no_grad():
        images = decode(x.detach()).cpu()
    return OptimizationResult(
        images=images,
        converged=converged.cpu().numpy(),
        n_iter=(updates + updates_8bit).cpu().numpy(),
        n_iter_8bit=updates_8bit.cpu().numpy(),
        loss_history=np.asarray(history) if history else np.zeros((0, len(x))),
        aux_history=_stack_aux(aux_rows, len(x)),
    )


def _identity(images: torch.Tensor) -> torch.Tensor:
    return images


def _reparameterize(images: torch.Tensor, objective: Objective, parameterization):
    """Parameters of ``images``, the objective on decoded parameters, and the decoder."""
    shape = tuple(images.shape[-2:])

    def decode(params):
        return parameterization.decode(params, shape)

    def on_parameters(params, index):
        return objective(decode(params), index)

    return parameterization.encode(images), on_parameters, decode

