"""Adversarial noise (AN) and adversarial interference (AI) images (paper 001, eq. 1)."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .._device import model_on
from ..models import IMAGENET_MEAN, LayeredModel
from ..stimuli import StimulusSet
from ..synth import optimize_pixels

__all__ = ["SCORES", "imagenet_mean_image", "noise_images", "interference_images", "paper_design", "true_classes"]

SCORES = ("log_prob", "logit", "prob")

# Defaults, chosen so that both kinds reach p >= 0.99 on AlexNet-class networks within a few
# hundred Adam steps. The L2 weights are per summed squared pixel difference in [0, 1] units:
# for a 224 x 224 image, ||I - I_start||^2 = 150 528 * MSE.
AN_LAMBDA = 1e-4   # AN: a weak pull toward the mean image (paper eq. 1), the class term dominates
AI_LAMBDA = 1e-2   # AI: a strong pull toward the RE image keeps the perturbation small (PSNR > 30 dB)
AN_LR = 0.01
AI_LR = 0.002


def imagenet_mean_image(size: int = 224, mean: Sequence[float] = IMAGENET_MEAN) -> torch.Tensor:
    """The constant image of the ImageNet channel means, (3, size, size): the AN starting point."""
    return torch.tensor(mean, dtype=torch.float32).view(3, 1, 1).expand(3, size, size).clone()


def _class_score(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    rows = torch.arange(len(targets), device=logits.device)
    if score == "log_prob":
        return torch.log_softmax(logits, dim=1)[rows, targets]
    if score == "logit":
        return logits[rows, targets]
    return torch.softmax(logits, dim=1)[rows, targets]


def _psnr(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10 * np.log10(1.0 / np.maximum(mse, 1e-300)), np.inf)


def _optimize_toward_classes(model, start, targets, anchor, *, lam, score, threshold, lr, max_iter,
                             max_iter_8bit, batch_size, device, progress, desc):
    """Run the core on batches; returns the 8-bit images and per-image iteration counts."""
    if score not in SCORES:
        raise ValueError(f"score: expected one of {SCORES}, found {score!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: expected a probability in (0, 1), found {threshold}")
    with model_on(model, device) as device:  # the user's network goes back where it was afterwards
        return _optimize_on(model, start, targets, anchor, lam=lam, score=score, threshold=threshold, lr=lr,
                            max_iter=max_iter, max_iter_8bit=max_iter_8bit, batch_size=batch_size,
                            device=device, progress=progress, desc=desc)


def _optimize_on(model, start, targets, anchor, *, lam, score, threshold, lr, max_iter, max_iter_8bit,
                 batch_size, device, progress, desc):
    if batch_size is None:
        # measured on 2 CPU cores: EfficientNet-Lite0 costs 3.5x more per image at batch 40 than at 4
        # (its large activation maps thrash the cache) while AlexNet gains little past 8
        batch_size = 64 if device.type == "cuda" else 8
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
    images, n_iter, n_iter_8bit = [], [], []
    for begin in range(0, len(start), batch_size):
        end = min(begin + batch_size, len(start))
        batch_targets = torch.as_tensor(targets[begin:end], dtype=torch.long, device=device)
        batch_anchor = anchor[begin:end].to(device)

        def objective(candidates, index, targets_=batch_targets, anchor_=batch_anchor):
            logits = model(candidates)
            penalty = (candidates - anchor_[index]).pow(2).flatten(1).sum(dim=1)
            loss = -_class_score(logits, targets_[index], score) + lam * penalty
            p_target = torch.softmax(logits.detach(), dim=1)[torch.arange(len(index), device=device), targets_[index]]
            return loss, {"p_target": p_target}

        result = optimize_pixels(
            start[begin:end], objective, criterion=lambda aux, index: aux["p_target"] >= threshold,
            lr=lr, max_iter=max_iter, quantize=True, max_iter_8bit=max_iter_8bit, device=device,
            progress=progress, desc=f"{desc} images {begin + 1}-{end} of {len(start)}", watch=("p_target", threshold),
        )
        images.append(result.images)
        n_iter.append(result.n_iter)
        n_iter_8bit.append(result.n_iter_8bit)
    return torch.cat(images), np.concatenate(n_iter), np.concatenate(n_iter_8bit)


def _describe(model, images, start, targets, threshold, n_iter, n_iter_8bit, lam, score) -> pd.DataFrame:
    proba = model.predict_proba(images)
    top1 = proba.argmax(axis=1)
    rows = np.arange(len(images))
    difference = (images.double() - start.double()).flatten(1)
    mse = difference.pow(2).mean(dim=1).numpy()
    p_target = proba[rows, targets]
    return pd.DataFrame({
        "target_class": np.asarray(targets, dtype=np.int64),
        "target_name": [model.class_name(int(t)) for t in targets],
        "p_target": p_target,
        "top1_class": top1.astype(np.int64),
        "top1_name": [model.class_name(int(t)) for t in top1],
        "p_top1": proba[rows, top1],
        "n_iter": n_iter.astype(np.int64),
        "n_iter_8bit": n_iter_8bit.astype(np.int64),
        "success": p_target >= threshold,
        "l2": difference.norm(dim=1).numpy(),
        "linf": difference.abs().max(dim=1).values.numpy(),
        "psnr": _psnr(mse),
        "lambda": lam,
        "score": score,
    })


def _warn_failures(table: pd.DataFrame, kind: str, threshold: float, max_iter: int) -> None:
    failed = table.loc[~table["success"], "image_id"].tolist()
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(table)} {kind} images did not reach p >= {threshold} within "
            f"max_iter={max_iter}: {failed[:5]}{' ...' if len(failed) > 5 else ''} (kept, with success=False)",
            stacklevel=3,
        )


def noise_images(
    model: LayeredModel,
    target_classes: Sequence[int],
    *,
    threshold: float = 0.99,
    lam: float = AN_LAMBDA,
    score: str = "log_prob",
    mean_image=None,
    size: int | None = None,
    source_ids: Sequence[str] | None = None,
    lr: float = AN_LR,
    max_iter: int = 1000,
    max_iter_8bit: int = 200,
    batch_size: int | None = None,
    device=None,
    progress: bool | None = None,
) -> StimulusSet:
    """Adversarial noise (AN) images: from the mean image to p(target) >= ``threshold``.

    Maximizes score_c(I) - lam * ||I - I_mean||^2 over pixels in [0, 1] (paper 001, eq. 1;
    Nguyen et al.'s method), where score is the log-probability of the target class by default:
    the raw probability's gradient vanishes where p is near 0, so optimizing it directly
    (``score="prob"``, the literal eq. 1) stalls from a mean-image start. Each image stops as
    soon as its 8-bit version is classified as its target with p >= ``threshold``.

    Parameters
    ----------
    model : LayeredModel
    target_classes : sequence of int (n_images,)
        ImageNet class of each AN image (in the study: the class of its RE image).
    threshold : float
        Stopping probability (the study: 0.99).
    lam : float
        Weight of the squared L2 distance to the mean image, in [0, 1] pixel units.
    score : {"log_prob", "logit", "prob"}
    mean_image : array or tensor (3, H, W), optional
        Starting image; default the constant image of the ImageNet channel means at ``size``.
    size : int, optional
        Image side when ``mean_image`` is not given; default the model's input size.
    source_ids : sequence of str, optional
        The RE image each AN image belongs to (the table's ``source_id``).
    lr : float
        Adam step in pixel units.
    max_iter, max_iter_8bit : int
        Update limits of the float phase and of the 8-bit phase.
    batch_size : int, optional
        Images optimized together (each still stops on its own); default 64 on CUDA, 8 on CPU.
    device : str, optional
        Where to optimize; default the model's own device. The model is moved there for the call
        and back afterwards.
    progress : bool, optional

    Returns
    -------
    StimulusSet
        Kind ``AN``; the table records target, final probabilities, top-1 class, iterations,
        ``success``, and L2 / Linf / PSNR distance to the starting image. Images that failed are
        kept (``success=False``) and a warning names them.

    Examples
    --------
    >>> from brainprobe.models import load_model
    >>> from brainprobe.adversarial import noise_images
    >>> model = load_model("efficientnet_lite0", "imagenet")  # doctest: +SKIP
    >>> an = noise_images(model, [281, 948])                   # doctest: +SKIP
    >>> an.table[["target_name", "p_target", "n_iter"]]        # doctest: +SKIP
    """
    targets = np.asarray(target_classes, dtype=np.int64).reshape(-1)
    _check_targets(model, targets, "target_classes")
    if mean_image is None:
        start_one = imagenet_mean_image(size or model.input_size)
    else:
        start_one = torch.as_tensor(np.asarray(mean_image), dtype=torch.float32)
        if start_one.ndim != 3 or start_one.shape[0] != 3 or float(start_one.min()) < 0 or float(start_one.max()) > 1:
            raise ValueError(f"mean_image: expected (3, H, W) in [0, 1], found shape {tuple(start_one.shape)}")
    start = start_one.unsqueeze(0).repeat(len(targets), 1, 1, 1)
    images, n_iter, n_iter_8bit = _optimize_toward_classes(
        model, start, targets, start, lam=lam, score=score, threshold=threshold, lr=lr, max_iter=max_iter,
        max_iter_8bit=max_iter_8bit, batch_size=batch_size, device=device, progress=progress, desc="AN",
    )
    sources = [f"target{t}_{i}" for i, t in enumerate(targets)] if source_ids is None else [str(s) for s in source_ids]
    if len(sources) != len(targets):
        raise ValueError(f"source_ids: expected {len(targets)} ids, found {len(sources)}")
    table = pd.DataFrame({"image_id": [kind_id("AN", s) for s in sources], "kind": "AN", "source_id": sources,
                          "class_index": targets})
    table = pd.concat([table, _describe(model, images, start, targets, threshold, n_iter, n_iter_8bit, lam, score)], axis=1)
    _warn_failures(table, "AN", threshold, max_iter)
    return StimulusSet(images, table)


def kind_id(kind: str, source_id: str) -> str:
    """The id of the ``kind`` image made from RE image ``source_id``: ``AN/img00`` from ``RE/img00``
    or ``img00``, the ids `brainprobe.stimuli.load_folder` gives a folder of ``RE/``, ``AN/``,
    ``AI/`` sub-folders (the layout a saved design's ``images/`` has)."""
    name = source_id[3:] if source_id.startswith("RE/") else source_id
    return f"{kind}/{name}"


def _check_targets(model, targets, name) -> None:
    n_classes = len(model.class_names) if model.class_names is not None else None
    if len(targets) == 0:
        raise ValueError(f"{name}: expected at least one class index")
    if targets.min() < 0 or (n_classes is not None and targets.max() >= n_classes):
        raise ValueError(f"{name}: class indices must lie in 0..{(n_classes or 0) - 1}, found {targets.min()}..{targets.max()}")


def true_classes(model: LayeredModel, stimuli: StimulusSet) -> np.ndarray:
    """Each image's class: its ``class_index`` where set (>= 0), else the model's top-1 class."""
    classes = stimuli.table["class_index"].to_numpy().copy()
    unknown = classes < 0
    if unknown.any():
        classes[unknown] = model.predict(stimuli.images[torch.as_tensor(np.flatnonzero(unknown))])
    return classes.astype(np.int64)


def _choose_targets(model, stimuli, true, target_classes, seed) -> np.ndarray:
    n_classes = len(model.class_names) if model.class_names is not None else 1000
    if isinstance(target_classes, str):
        if target_classes == "random":
            draws = np.random.default_rng(seed).integers(0, n_classes - 1, size=len(true))
            return draws + (draws >= true)  # uniform over the other classes, never the true one
        if target_classes == "least_likely":
            return model.predict_proba(stimuli).argmin(axis=1).astype(np.int64)
        raise ValueError(f"target_classes: expected 'random', 'least_likely' or class indices, found {target_classes!r}")
    targets = np.asarray(target_classes, dtype=np.int64).reshape(-1)
    if len(targets) != len(true):
        raise ValueError(f"target_classes: expected {len(true)} class indices (one per image), found {len(targets)}")
    same = np.flatnonzero(targets == true)
    if len(same):
        raise ValueError(f"target_classes: images {same[:5].tolist()} are targeted at their own class")
    return targets


def interference_images(
    model: LayeredModel,
    images: StimulusSet,
    target_classes="random",
    *,
    threshold: float = 0.99,
    lam: float = AI_LAMBDA,
    score: str = "log_prob",
    seed=0,
    lr: float = AI_LR,
    max_iter: int = 1000,
    max_iter_8bit: int = 200,
    batch_size: int | None = None,
    device=None,
    progress: bool | None = None,
) -> StimulusSet:
    """Adversarial interference (AI) images: each RE image pushed into another class.

    Starting from each RE image I_RE, maximizes score_target(I) - lam * ||I - I_RE||^2 until the
    8-bit image is classified as the target with p >= ``threshold``. The L2 pull toward the RE
    image keeps the perturbation small: with the default ``lam`` AI images on ImageNet networks
    stay above 30 dB PSNR (the table reports L2, Linf and PSNR of every image).

    Parameters
    ----------
    model : LayeredModel
    images : StimulusSet
        The RE images; their ``class_index`` (or, where -1, the model's top-1) is the true class.
    target_classes : "random", "least_likely" or sequence of int
        ``random``: uniform over the other classes (seeded; never the true class).
        ``least_likely``: the class the model rates least likely for the RE image.
    threshold, lam, score, lr, max_iter, max_iter_8bit, batch_size, device, progress
        As in `noise_images`.
    seed : int or Generator
        For ``target_classes="random"``.

    Returns
    -------
    StimulusSet
        Kind ``AI``, ``source_id`` the RE image's id, ``class_index`` its true class.
    """
    if not isinstance(images, StimulusSet):
        raise TypeError(f"images: expected a StimulusSet (RE images with ids), found {type(images).__name__}")
    true = true_classes(model, images)
    targets = _choose_targets(model, images, true, target_classes, seed)
    _check_targets(model, targets, "target_classes")
    start = images.images
    result, n_iter, n_iter_8bit = _optimize_toward_classes(
        model, start, targets, start, lam=lam, score=score, threshold=threshold, lr=lr, max_iter=max_iter,
        max_iter_8bit=max_iter_8bit, batch_size=batch_size, device=device, progress=progress, desc="AI",
    )
    sources = images.table["image_id"].tolist()
    table = pd.DataFrame({"image_id": [kind_id("AI", s) for s in sources], "kind": "AI", "source_id": sources,
                          "category": images.table["category"].tolist(), "class_index": true})
    table = pd.concat([table, _describe(model, result, start, targets, threshold, n_iter, n_iter_8bit, lam, score)], axis=1)
    _warn_failures(table, "AI", threshold, max_iter)
    return StimulusSet(result, table)


def paper_design(model: LayeredModel, re_images: StimulusSet, *, seed=0, threshold: float = 0.99,
                 an_options: dict | None = None, ai_options: dict | None = None,
                 progress: bool | None = None) -> StimulusSet:
    """The study's stimulus set: every RE image with one AN and one AI image.

    The AN image targets the RE image's class; the AI image a different, random class (seeded).
    All three share the RE image's id as ``source_id``, ready for `brainprobe.rsa.kind_similarity`.

    Parameters
    ----------
    model : LayeredModel
    re_images : StimulusSet
        RE images; ``class_index`` -1 means "use the model's top-1 class".
    seed : int
    threshold : float
    an_options, ai_options : dict, optional
        Extra keyword arguments for `noise_images` and `interference_images`.

    Returns
    -------
    StimulusSet
        RE rows first, then AN, then AI; RE rows carry the model's top-1 class and probability.
        Ids are ``RE/<id>``, ``AN/<id>`` and ``AI/<id>`` for an RE image ``<id>`` (an id that
        starts with ``RE/`` already keeps it), as `brainprobe.stimuli.load_folder` names the
        saved ``images/`` folder's files, so either way of reading a design gives the same ids.
    """
    height, width = re_images.image_size
    if height != width:
        raise ValueError(f"re_images: expected square images (AN images start from a square mean image), "
                         f"found {height}x{width}; load them with size=224 (or the network's input size)")
    true = true_classes(model, re_images)
    re_proba = model.predict_proba(re_images)
    top1 = re_proba.argmax(axis=1)
    ids = [kind_id("RE", i) for i in re_images.table["image_id"]]  # RE/img00, AN/img00, AI/img00: one convention
    re_table = re_images.table.assign(
        image_id=ids, kind="RE", source_id=ids, class_index=true,
        top1_class=top1, top1_name=[model.class_name(int(t)) for t in top1],
        p_top1=re_proba[np.arange(len(top1)), top1],
    )
    regular = StimulusSet(re_images.images, re_table)
    say = _stage_printer(progress)
    say(f"{len(regular)} AN images: from the mean image to the RE image's class, p >= {threshold:g}")
    started = time.perf_counter()
    noise = noise_images(model, true, threshold=threshold, source_ids=regular.image_ids, size=height,
                         progress=progress, **(an_options or {}))
    say(_stage_summary(noise.table, "AN", threshold, time.perf_counter() - started))
    noise.table["category"] = regular.table["category"].to_numpy()
    say(f"{len(regular)} AI images: each RE image to a random other class, p >= {threshold:g}")
    started = time.perf_counter()
    interference = interference_images(model, regular, "random", threshold=threshold, seed=seed,
                                       progress=progress, **(ai_options or {}))
    say(_stage_summary(interference.table, "AI", threshold, time.perf_counter() - started))
    return StimulusSet.concat([regular, noise, interference])


def _stage_printer(progress: bool | None):
    """A line per stage on stderr where no progress bar shows it (``progress=None`` and stderr
    not a terminal: notebooks, logs, cluster jobs), so a long run is never silent; else a no-op."""
    terminal = getattr(sys.stderr, "isatty", lambda: False)()
    if progress is not None or terminal:
        return lambda text: None
    return lambda text: print(f"paper_design: {text}", file=sys.stderr, flush=True)


def _stage_summary(table: pd.DataFrame, kind: str, threshold: float, seconds: float) -> str:
    steps = table["n_iter"].to_numpy()
    return (f"{kind}: {int(table['success'].sum())} of {len(table)} reached p >= {threshold:g} "
            f"(steps: median {int(np.median(steps))}, max {int(steps.max())}) in {seconds:.0f} s")
