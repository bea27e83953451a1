"""Show a figure where it was made, at a size a screen can read.

The figures are drawn for a journal page (89 or 183 mm wide, 7 pt text): Jupyter's inline
backend shows them at 72-100 px per inch, where 7 pt text is a few pixels high, and figures made
inside `matplotlib.pyplot.rc_context` are not always flushed at the end of their cell. `show`
renders the figure itself, in the cell that calls it, at screen size; `save_figure` keeps the
journal size for files.
"""

from __future__ import annotations

import io

__all__ = ["SCREEN_PX_PER_INCH", "show"]

# 7 pt text at 120 px per inch is 12 px high, as a notebook's own text; rendered at twice that
# for sharp lines on high-density screens
SCREEN_PX_PER_INCH = 120
MAX_WIDTH_PX = 960


def _notebook_display():
    """IPython's ``display`` inside a kernel (Jupyter, nbclient), else None (a terminal or script)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return lambda png, width: display(Image(data=png, width=width))


def show(figure, *, px_per_inch: int = SCREEN_PX_PER_INCH) -> None:
    """Display ``figure`` now, in this notebook cell, at screen size, and close it.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        Any figure of `brainprobe.plotting` (or your own).
    px_per_inch : int
        Screen pixels per inch of the figure's (journal) size: 120 makes a one-column figure
        (89 mm) 420 px wide with 12 px text, a two-column one 865 px.

    Outside a notebook kernel it calls `matplotlib.pyplot.show`.
    """
    import matplotlib.pyplot as plt

    display = _notebook_display()
    if display is None:
        plt.show()
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=2 * px_per_inch, bbox_inches="tight", pad_inches=0.04,
                   facecolor="white")
    plt.close(figure)  # shown once, here: the inline backend must not show it again later
    png = buffer.getvalue()
    # the PNG header's width at px_per_inch, at most a notebook's text column (larger figures: image grids)
    display(png, min(int.from_bytes(png[16:20], "big") // 2, MAX_WIDTH_PX))
