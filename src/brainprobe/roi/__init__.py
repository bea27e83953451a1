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
from ._selection import SPLITS, neighbourhoods_for_columns, repeat_splits, select_reliable_vertices
from ._smoothing import mesh_smoother
from ._volume import label_image_rois, spherical_neighbourhoods

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
    "SPLITS",
    "label_image_rois",
    "repeat_splits",
    "spherical_neighbourhoods",
    "mesh_smoother",
]
