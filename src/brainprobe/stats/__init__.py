"""Permutation, bootstrap and trend tests, confidence intervals, corrections: the one place statistics live. Not implemented yet: issue 5."""

__all__: list[str] = []
