"""Adversarial noise (AN) and adversarial interference (AI) images by gradient ascent (paper 001). Not implemented yet: issue 3."""

__all__: list[str] = []
