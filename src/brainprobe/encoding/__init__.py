"""Sparse and linear encoding models (ROMP, ridge), per ROI x layer, generalization tests. Not implemented yet: issue 6."""

__all__: list[str] = []
