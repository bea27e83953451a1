"""fMRI responses: loading betas from any format, simulated subjects. Not implemented yet: issue 4."""

__all__: list[str] = []
