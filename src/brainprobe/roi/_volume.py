"""Volume data: spherical neighbourhoods on the voxel grid and ROIs from NIfTI label images."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

__all__ = ["spherical_neighbourhoods", "label_image_rois"]


def _voxel_mm(vertices: pd.DataFrame, affine) -> np.ndarray:
    if affine is not None:
        ijk = vertices[["i", "j", "k"]].to_numpy(np.float64)
        return np.column_stack([ijk, np.ones(len(ijk))]) @ np.asarray(affine, dtype=np.float64)[:3].T
    if {"x", "y", "z"} <= set(vertices.columns):
        return vertices[["x", "y", "z"]].to_numpy(np.float64)
    raise ValueError("vertices: need x, y, z (mm) columns or an affine with i, j, k columns to place the voxels; "
                     f"columns are {list(vertices.columns)}")


def spherical_neighbourhoods(vertices: pd.DataFrame, radius_mm: float, *, affine=None) -> dict[str, sp.csr_matrix]:
    """Spheres of ``radius_mm`` around every voxel of a volume, within the voxels that have data.

    The same object as `geodesic_neighbourhoods` gives for a mesh, so vertex selection and
    searchlights run unchanged on volume data: a boolean sparse matrix whose row v holds the
    voxels within ``radius_mm`` (Euclidean, in mm) of voxel v, keyed by the volume's hemisphere
    label ``""`` and indexed by the vertex table's ``vertex`` (flat voxel index).

    Parameters
    ----------
    vertices : DataFrame
        A volume's vertex table (`brainprobe.data.load_responses` of NIfTI data): ``vertex``
        and ``x, y, z`` in mm (or ``i, j, k`` with ``affine``).
    radius_mm : float
    affine : array (4, 4), optional
        Voxel to mm; default the table's ``x, y, z``.

    Returns
    -------
    dict ``{"": csr_matrix (n_flat, n_flat)}`` with n_flat = the largest flat index + 1.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from brainprobe.roi import spherical_neighbourhoods
    >>> table = pd.DataFrame({"vertex": [0, 1, 2], "x": [0.0, 3.0, 9.0], "y": 0.0, "z": 0.0})
    >>> spherical_neighbourhoods(table, 4.0)[""].toarray().astype(int)
    array([[1, 1, 0],
           [1, 1, 0],
           [0, 0, 1]])
    """
    if not radius_mm > 0:
        raise ValueError(f"radius_mm: expected a positive radius, found {radius_mm!r}")
    coordinates = _voxel_mm(vertices, affine)
    flat = vertices["vertex"].to_numpy(np.int64)
    pairs = cKDTree(coordinates).query_pairs(radius_mm * (1 + 1e-9), output_type="ndarray")
    rows = np.concatenate([np.arange(len(flat)), pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([np.arange(len(flat)), pairs[:, 1], pairs[:, 0]])
    size = int(flat.max()) + 1
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=bool), (flat[rows], flat[cols])), shape=(size, size))
    return {"": matrix}


def label_image_rois(vertices: pd.DataFrame, labels, names: Mapping[str, int | list]) -> dict[str, np.ndarray]:
    """ROI masks over a volume's voxels from a NIfTI label image (an atlas or the user's own).

    Parameters
    ----------
    vertices : DataFrame with ``i, j, k``
        The volume's vertex table; the label image must be on the same voxel grid.
    labels : path or nibabel image
        Integer labels per voxel.
    names : mapping of ROI name to a label value or a list of values

    Returns
    -------
    dict of ROI name to bool array (n_voxels,)
    """
    import nibabel as nib

    image = nib.load(str(labels)) if not hasattr(labels, "dataobj") else labels
    data = np.asarray(image.dataobj)
    ijk = vertices[["i", "j", "k"]].to_numpy(np.int64)
    if (ijk >= np.asarray(data.shape[:3])).any():
        raise ValueError(f"labels {labels}: its grid {data.shape[:3]} does not hold the data's voxels (up to "
                         f"{ijk.max(axis=0).tolist()}); resample it onto the betas' grid")
    values = data[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    masks = {}
    for name, wanted in names.items():
        wanted = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        masks[name] = np.isin(values, wanted)
        if not masks[name].any():
            raise ValueError(f"labels {labels}: ROI {name!r} (labels {wanted}) holds none of the data's voxels")
    return masks
