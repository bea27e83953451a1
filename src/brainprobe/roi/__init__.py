"""Cortical meshes and geodesic neighbourhoods (ROI masks, localizers and vertex selection
follow in issue 4)."""

from ._mesh import (
    NEIGHBOURHOOD_METHODS,
    Mesh,
    fs_lr_32k,
    geodesic_neighbourhoods,
    load_mesh,
    mesh_edges,
)

__all__ = ["Mesh", "NEIGHBOURHOOD_METHODS", "fs_lr_32k", "geodesic_neighbourhoods", "load_mesh", "mesh_edges"]
