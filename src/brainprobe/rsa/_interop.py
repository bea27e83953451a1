"""RDMs to and from rsatoolbox's ``RDMs``, keeping the image ids and the distance's name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._rdm import n_items_from_condensed

__all__ = ["to_rsatoolbox", "from_rsatoolbox", "RSATOOLBOX_METRICS"]

# brainprobe's metric names and rsatoolbox's ``dissimilarity_measure`` for the same distance
RSATOOLBOX_METRICS = {"correlation": "correlation", "cosine": "cosine", "squared_euclidean": "euclidean",
                      "crossnobis": "crossnobis", "euclidean": "euclidean_unsquared"}


def to_rsatoolbox(rdms, image_ids: Sequence[str], *, metric: str = "correlation", names: Sequence[str] | None = None,
                  descriptor: str = "roi"):
    """Condensed RDMs as one rsatoolbox ``RDMs`` object.

    Parameters
    ----------
    rdms : array (n_pairs,) or (n_rdms, n_pairs), or mapping of name to array (n_pairs,)
        Upper triangles, row-major (brainprobe's and scipy's order, which rsatoolbox shares).
    image_ids : sequence of str (n_images,)
        Stored as the pattern descriptor ``image_id``.
    metric : str
        brainprobe's metric name; stored as rsatoolbox's ``dissimilarity_measure``
        (``squared_euclidean`` is rsatoolbox's ``euclidean``).
    names : sequence of str, optional
        One per RDM, stored as the RDM descriptor ``descriptor`` (mapping keys by default).
    descriptor : str

    Returns
    -------
    rsatoolbox.rdm.RDMs
    """
    from rsatoolbox.rdm import RDMs

    if isinstance(rdms, Mapping):
        names = list(rdms) if names is None else list(names)
        rdms = np.stack([np.asarray(v, dtype=np.float64) for v in rdms.values()])
    values = np.atleast_2d(np.asarray(rdms, dtype=np.float64))
    n_items = n_items_from_condensed(values.shape[1])
    image_ids = [str(i) for i in image_ids]
    if len(image_ids) != n_items:
        raise ValueError(f"image_ids: expected {n_items} ids (the RDMs are over {n_items} images), found {len(image_ids)}")
    if len(set(image_ids)) != n_items:
        raise ValueError("image_ids: contain duplicates; each RDM row must be a distinct image")
    rdm_descriptors = {}
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(values):
            raise ValueError(f"names: expected {len(values)} names (one per RDM), found {len(names)}")
        rdm_descriptors[descriptor] = names
    return RDMs(values, dissimilarity_measure=RSATOOLBOX_METRICS.get(metric, metric),
                rdm_descriptors=rdm_descriptors or None, pattern_descriptors={"image_id": image_ids})


def from_rsatoolbox(rdms, *, descriptor: str | None = None) -> dict:
    """An rsatoolbox ``RDMs`` object as brainprobe's condensed arrays.

    Parameters
    ----------
    rdms : rsatoolbox.rdm.RDMs
    descriptor : str, optional
        RDM descriptor whose values name the RDMs (default: ``roi`` when present, else the
        RDMs' ``index``).

    Returns
    -------
    dict
        ``rdms`` (array (n_rdms, n_pairs)), ``names`` (list of str), ``image_ids`` (list of str:
        the pattern descriptor ``image_id``, else ``conds``, else ``index``) and ``metric``
        (brainprobe's name for the dissimilarity measure when it has one, else rsatoolbox's).
    """
    if not hasattr(rdms, "get_vectors") or not hasattr(rdms, "pattern_descriptors"):
        raise TypeError(f"rdms: expected an rsatoolbox RDMs object, found {type(rdms).__name__}")
    values = np.asarray(rdms.get_vectors(), dtype=np.float64)
    patterns = rdms.pattern_descriptors
    key = next((k for k in ("image_id", "conds", "index") if k in patterns), None)
    n_items = n_items_from_condensed(values.shape[1])
    image_ids = [str(v) for v in patterns[key]] if key else [str(i) for i in range(n_items)]
    chosen = descriptor or ("roi" if "roi" in rdms.rdm_descriptors else "index")
    if chosen not in rdms.rdm_descriptors:
        raise ValueError(f"descriptor: {chosen!r} is not an RDM descriptor; they are {sorted(rdms.rdm_descriptors)}")
    names = [str(v) for v in rdms.rdm_descriptors[chosen]]
    measure = rdms.dissimilarity_measure
    back = {v: k for k, v in RSATOOLBOX_METRICS.items()}
    return {"rdms": values, "names": names, "image_ids": image_ids, "metric": back.get(measure, measure)}
