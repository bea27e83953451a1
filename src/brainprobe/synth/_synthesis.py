"""The contract every synthesis object keeps (as plenoptic's ``_Synthesis``).

Pre-images, metamers, textures, distortions, MAD competition and the brain-targeted syntheses
all derive from `Synthesis`, so a user, the CLI and the report can treat them alike:

- ``synthesize(max_iter, *, progress=None, device=None)`` runs the optimization and returns
  the object;
- ``images``: the synthesized images (n_images, 3, H, W) on the CPU, None before;
- ``n_iter``: int array (n_images,), the optimization steps each image took (one meaning
  everywhere: images that stop on their own have fewer);
- ``losses`` (n_steps, n_images) and ``history`` (dict of per-step, per-image numbers);
- ``table_``: one tidy DataFrame of what was made, with the numbers that say how well
  (``method``, ``image``, ``n_iter`` and the method's own columns);
- ``save(path, *, overwrite=False)`` and ``load(path, model)``: ``torch.save`` of tensors and
  JSON settings, read with ``torch.load(weights_only=True)``; ``load`` checks that the model
  it is given is the one the file was made with;
- ``to(device)``: moves the network(s) and every tensor attribute; returns the object.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["Synthesis", "check_saved_model"]


def check_saved_model(path, settings: dict, model) -> None:
    """Raise if ``model`` is not the network a synthesis file was made with (by name)."""
    saved = settings.get("model")
    name = getattr(model, "name", None)
    if saved is not None and name is not None and saved != name:
        raise ValueError(f"{path}: made with model {saved!r}, given {name!r}; load it with the same network")


class Synthesis:
    """Base class of every synthesis object (see the module notes for the contract)."""

    method = "synthesis"
    images: torch.Tensor | None = None

    def synthesize(self, max_iter: int, *, progress: bool | None = None, device=None):
        raise NotImplementedError  # each method runs its own optimization

    def _table(self) -> pd.DataFrame:
        raise NotImplementedError  # each method's own columns, one row per image (or per image x model)

    @property
    def table_(self) -> pd.DataFrame:
        """What was made and how well: ``method``, ``image``, ``n_iter`` and the method's columns."""
        if self.images is None:
            raise RuntimeError(f"{type(self).__name__}: call synthesize() first")
        table = self._table().copy()
        if "image" not in table:
            table.insert(0, "image", np.arange(len(table)))
        counts = np.broadcast_to(np.asarray(self.n_iter), (len(self.images),))
        if "n_iter" not in table:
            table["n_iter"] = counts[table["image"].to_numpy()]
        table.insert(0, "method", self.method)
        return table.reset_index(drop=True)

    def _networks(self) -> list:
        """The torch modules `to` moves (each method lists its own)."""
        return [self.model] if hasattr(self, "model") else []

    def to(self, device):
        """Move the network(s) and every tensor attribute to ``device``. Returns self."""
        for network in self._networks():
            network.to(device)
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self
