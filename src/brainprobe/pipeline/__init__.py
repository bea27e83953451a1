"""A Study: a TOML configuration -> cached steps -> result tables, figures and ``report.html``.

Examples
--------
>>> from brainprobe.pipeline import Study, demo_config
>>> result = Study(demo_config("demo-out")).run()  # doctest: +SKIP
>>> result.report  # doctest: +SKIP
PosixPath('demo-out/report.html')
"""

from ._cache import StepCache, atomic_write
from ._config import DEFAULTS, ConfigError, StudyConfig, demo_config, load_config, validate
from ._steps import (
    brain_rsa,
    encoding_analysis,
    load_subject,
    make_stimuli,
    network_rsa,
    searchlight_map,
    selection_tables,
    simulated_subject,
)
from ._study import Study, StudyResult, read_table, write_table

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "StepCache",
    "Study",
    "StudyConfig",
    "StudyResult",
    "atomic_write",
    "brain_rsa",
    "demo_config",
    "encoding_analysis",
    "load_config",
    "load_subject",
    "make_stimuli",
    "network_rsa",
    "read_table",
    "searchlight_map",
    "selection_tables",
    "simulated_subject",
    "validate",
    "write_table",
]
