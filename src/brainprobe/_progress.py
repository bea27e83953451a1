"""The one place that picks brainprobe's progress bar.

tqdm's notebook bar needs ``ipywidgets``; without it ``tqdm.auto`` warns ("IProgress not
found") in every notebook and falls back to text anyway. So the widget bar is used only where
ipywidgets is installed, and the plain text bar everywhere else (terminals, notebooks, logs).
"""

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm.std import tqdm

__all__ = ["tqdm"]
