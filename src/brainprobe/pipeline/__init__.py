"""A Study: a TOML configuration -> cached steps -> result tables, figures and ``report.html``.

Examples
--------
>>> from brainprobe.pipeline import Study, demo_config
>>> result = Study(demo_config("demo-out")).run()  # doctest: +SKIP
>>> result.report  # doctest: +SKIP
PosixPath('demo-out/report.html')
"""

from ._config import DEFAULTS, ConfigError, StudyConfig, demo_config, load_config, validate
from ._report import redraw_figures
from ._study import Study, StudyResult
from ._tables import read_table, write_table

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "Study",
    "StudyConfig",
    "StudyResult",
    "demo_config",
    "load_config",
    "read_table",
    "redraw_figures",
    "validate",
    "write_table",
]
