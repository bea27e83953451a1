"""Cortical meshes, geodesic neighbourhoods, ROI masks (atlas labels, MMP1.0, localizers) and
reliability-based vertex selection."""

from ._mesh import (
    NEIGHBOURHOOD_METHODS,
    Mesh,
    fs_lr_32k,
    geodesic_neighbourhoods,
    load_mesh,
    mesh_edges,
    mesh_sulcal_depth,
    standard_meshes,
    template_sulcal_depth,
    vertex_normals,
)
from ._rois import (
    PAPER_ROIS,
    add_atlas_rois,
    localizer_mask,
    mmp_labels,
    mmp_visual_rois,
    read_labels,
    roi_mask,
)
from ._selection import neighbourhoods_for_columns, select_reliable_vertices
from ._smoothing import mesh_smoother

__all__ = [
    "Mesh",
    "NEIGHBOURHOOD_METHODS",
    "PAPER_ROIS",
    "add_atlas_rois",
    "fs_lr_32k",
    "geodesic_neighbourhoods",
    "load_mesh",
    "localizer_mask",
    "mesh_edges",
    "mesh_sulcal_depth",
    "mmp_labels",
    "mmp_visual_rois",
    "neighbourhoods_for_columns",
    "read_labels",
    "roi_mask",
    "select_reliable_vertices",
    "standard_meshes",
    "template_sulcal_depth",
    "vertex_normals",
    "mesh_smoother",
]
