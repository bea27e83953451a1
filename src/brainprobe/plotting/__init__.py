"""Every figure; the only subpackage that imports matplotlib. Not implemented yet: issue 8."""

__all__: list[str] = []
