"""Image synthesis on one optimization core: inversion, activation maximization, caricature, metamers, textures, distortions. Not implemented yet: issue 7."""

__all__: list[str] = []
