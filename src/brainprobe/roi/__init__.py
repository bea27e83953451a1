"""Meshes, geodesic neighbourhoods, ROI masks, localizers, reliability-based vertex selection. Not implemented yet: issue 4."""

__all__: list[str] = []
