"""Responses (or any per-vertex values) written back as NIfTI volumes or nilearn SurfaceImages."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["values_to_gifti", "values_to_nifti", "values_to_surface_image", "volume_affine"]


def _as_maps(values, n_vertices: int, what: str) -> tuple[np.ndarray, bool]:
    values = np.asarray(values, dtype=np.float64)
    single = values.ndim == 1
    values = values[None] if single else values
    if values.ndim != 2 or values.shape[1] != n_vertices:
        raise ValueError(f"{what}: expected (n_vertices,) or (n_maps, n_vertices) with n_vertices = {n_vertices}, "
                         f"found {np.shape(values)}")
    return values, single


def volume_affine(vertices: pd.DataFrame) -> np.ndarray | None:
    """The voxel-to-mm affine implied by the ``i, j, k`` and ``x, y, z`` columns (None without them)."""
    if not {"i", "j", "k", "x", "y", "z"} <= set(vertices.columns):
        return None
    ijk1 = np.column_stack([vertices[["i", "j", "k"]].to_numpy(float), np.ones(len(vertices))])
    if np.linalg.matrix_rank(ijk1) < 4:
        return None
    solution = np.linalg.lstsq(ijk1, vertices[["x", "y", "z"]].to_numpy(float), rcond=None)[0]
    affine = np.eye(4)
    affine[:3, :] = solution.T
    return affine


def values_to_nifti(vertices: pd.DataFrame, values, *, shape=None, affine=None):
    """Per-voxel values as a NIfTI image: one volume per map, NaN outside the voxels.

    Parameters
    ----------
    vertices : DataFrame
        A volume's vertex table: ``i, j, k`` voxel indices (as `load_responses` writes them).
    values : array (n_voxels,) or (n_maps, n_voxels)
    shape : tuple of 3 int, optional
        The volume's grid; default the smallest that holds every voxel.
    affine : array (4, 4), optional
        Default from the table's ``x, y, z`` mm columns, else the identity.

    Returns
    -------
    nibabel.Nifti1Image
        3-D for one map, 4-D (maps last) for several.
    """
    import nibabel as nib

    if not {"i", "j", "k"} <= set(vertices.columns):
        raise ValueError("to_nifti: the vertex table has no i, j, k voxel columns (not volume data); "
                         f"columns are {list(vertices.columns)}")
    maps, single = _as_maps(values, len(vertices), "values")
    ijk = vertices[["i", "j", "k"]].to_numpy(np.int64)
    grid = tuple(int(v) for v in (shape if shape is not None else ijk.max(axis=0) + 1))
    if len(grid) != 3 or (ijk >= np.asarray(grid)).any():
        raise ValueError(f"shape: expected a 3-D grid holding every voxel (up to {ijk.max(axis=0).tolist()}), found {grid}")
    volume = np.full(grid + (len(maps),), np.nan)
    volume[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = maps.T
    if affine is None:
        affine = volume_affine(vertices)
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    return nib.Nifti1Image(volume[..., 0] if single else volume, affine)


def values_to_surface_image(vertices: pd.DataFrame, meshes, values):
    """Per-vertex values as a nilearn ``SurfaceImage`` on the subject's meshes (NaN off the vertices).

    Parameters
    ----------
    vertices : DataFrame with ``hemi`` (L/R) and ``vertex``
    meshes : mapping of hemi to `brainprobe.roi.Mesh`
    values : array (n_vertices,) or (n_maps, n_vertices)

    Returns
    -------
    nilearn.surface.SurfaceImage
        Parts ``left`` and ``right`` (the hemispheres that have a mesh); data (n_mesh_vertices,)
        or (n_mesh_vertices, n_maps).
    """
    from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage

    if not meshes:
        raise ValueError("to_surface_image: no meshes (volume data? use to_nifti)")
    maps, single = _as_maps(values, len(vertices), "values")
    parts, data = {}, {}
    hemis = vertices["hemi"].to_numpy()
    for hemi, name in (("L", "left"), ("R", "right")):
        if hemi not in meshes:
            continue
        mesh = meshes[hemi]
        parts[name] = InMemoryMesh(mesh.coordinates, mesh.faces)
        filled = np.full((mesh.n_vertices, len(maps)), np.nan)
        mine = hemis == hemi
        filled[vertices.loc[mine, "vertex"].to_numpy(np.int64)] = maps[:, mine].T
        data[name] = filled[:, 0] if single else filled
    unknown = sorted(set(hemis) - set(meshes))
    if unknown:
        raise ValueError(f"to_surface_image: vertices of hemispheres {unknown} have no mesh")
    return SurfaceImage(mesh=PolyMesh(**parts), data=data)


def values_to_gifti(vertices: pd.DataFrame, n_mesh_vertices, values, names=None) -> dict:
    """Per-vertex values as one GIfTI functional image per hemisphere (NaN off the vertices).

    Parameters
    ----------
    vertices : DataFrame with ``hemi`` (L/R) and ``vertex``
    n_mesh_vertices : mapping of hemi to int
        Vertices of each hemisphere's mesh (the GIfTI has one value per mesh vertex, so it
        overlays that mesh in any viewer).
    values : array (n_vertices,) or (n_maps, n_vertices)
    names : sequence of str, optional
        One name per map, stored as each data array's ``Name`` meta-data.

    Returns
    -------
    dict of hemi to nibabel.gifti.GiftiImage
        One float32 data array (n_mesh_vertices,) per map, for the hemispheres in ``vertices``.
    """
    import nibabel as nib

    maps, _ = _as_maps(values, len(vertices), "values")
    if names is not None and len(names) != len(maps):
        raise ValueError(f"names: expected {len(maps)} (one per map), found {len(names)}")
    hemis = vertices["hemi"].to_numpy()
    unknown = sorted(set(hemis) - set(n_mesh_vertices))
    if unknown:
        raise ValueError(f"to GIfTI: vertices of hemispheres {unknown} have no mesh size")
    structure = {"L": "CortexLeft", "R": "CortexRight"}
    images = {}
    for hemi in dict.fromkeys(hemis):
        mine = hemis == hemi
        index = vertices.loc[mine, "vertex"].to_numpy(np.int64)
        if index.size and index.max() >= n_mesh_vertices[hemi]:
            raise ValueError(f"to GIfTI: vertex {int(index.max())} of hemisphere {hemi} is beyond its mesh's "
                             f"{n_mesh_vertices[hemi]} vertices")
        arrays = []
        for k, row in enumerate(maps[:, mine]):
            filled = np.full(n_mesh_vertices[hemi], np.nan, np.float32)
            filled[index] = row
            meta = nib.gifti.GiftiMetaData({"Name": str(names[k])} if names is not None else {})
            arrays.append(nib.gifti.GiftiDataArray(filled, intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32",
                                                   meta=meta))
        images[hemi] = nib.gifti.GiftiImage(
            darrays=arrays, meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure.get(hemi, hemi)}))
    return images
