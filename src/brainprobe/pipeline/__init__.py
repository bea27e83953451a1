"""A Study: config -> steps -> tables, figures, report. Not implemented yet: issue 8."""

__all__: list[str] = []
