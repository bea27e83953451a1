"""RDMs, RDM comparison, RE-AN / RE-AI similarity, searchlight maps. Not implemented yet: issue 5."""

__all__: list[str] = []
