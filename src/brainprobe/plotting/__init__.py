"""Every figure of the package; nothing else imports matplotlib.

Figures are drawn from the tidy result tables (and images or meshes where a figure shows them),
so a user can remake any figure from ``results/*.csv``.
"""

from ._figures import (
    COLUMN_WIDTH_MM,
    JOURNAL_STYLE,
    KIND_COLORS,
    PAIR_COLORS,
    best_layer_figure,
    cortical_map,
    encoding_figure,
    image_grid,
    kind_bars,
    layer_profile,
    rdm_figure,
    rdm_panels,
    save_figure,
    stimulus_grid,
)
from ._general import best_layer_map, ceiling_profile
from ._show import show
from ._synthesis import synthesis_progress
from ._tables import network_rdm_figure, searchlight_maps
from ._viewer import cortex_viewer

__all__ = [
    "COLUMN_WIDTH_MM",
    "JOURNAL_STYLE",
    "KIND_COLORS",
    "PAIR_COLORS",
    "best_layer_figure",
    "cortex_viewer",
    "cortical_map",
    "encoding_figure",
    "image_grid",
    "kind_bars",
    "layer_profile",
    "network_rdm_figure",
    "rdm_figure",
    "rdm_panels",
    "save_figure",
    "searchlight_maps",
    "stimulus_grid",
    "synthesis_progress",
    "best_layer_map",
    "ceiling_profile",
    "show",
]
