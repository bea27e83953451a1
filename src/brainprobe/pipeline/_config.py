"""Study configuration: a TOML file, validated before any heavy work.

Every key has a default (`DEFAULTS`), so a study file only states what differs. Unknown keys,
wrong types, missing files, unknown ROIs and response files whose trial count does not match
their trial table are errors that name the key (``[encoding] n_perm``) and what was found.

Besides the sections of `DEFAULTS`, two arrays of tables repeat: ``[[subject]]`` (a subject's
response files, `SUBJECT_KEYS`) and ``[[compare]]`` (another network analysed on the study's
images, `COMPARE_KEYS`; the images are made against ``[network]``).
"""

from __future__ import annotations

import copy
import glob
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from .._errors import ConfigError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["DEFAULTS", "ConfigError", "StudyConfig", "demo_config", "load_config"]

# One table per section; the type of each default is the type a value must have
# (int is accepted where a float is expected; None means "optional, any of the listed").
DEFAULTS: dict[str, dict] = {
    "study": {"name": "study", "output": "brainprobe-results", "seed": 0},
    "stimuli": {
        "source": "samples",      # "samples", a folder of images, a CSV manifest, or a folder saved by save_stimuli
        "n_images": 12,           # with source = "samples"
        "generate": True,         # make one AN and one AI image per RE image (paper 001)
        "threshold": 0.99,
        "max_iter": 1000,
        "re_threshold": 0.0,          # the study kept RE images the network classifies at p >= 0.99
        "on_low_confidence": "raise",  # or "drop" / "keep" (with a warning): RE images below re_threshold
    },
    "network": {"name": "efficientnet_lite0", "weights": "imagenet", "init": "default", "layers": [],
                "transform": "default", "device": "auto", "batch_size": 0},
    # planted_layers = {V1 = "layer", ...}: each simulated ROI reads that layer of [network] (its
    # leading pattern-correlation components)
    # (a known best layer per ROI) instead of the default Gabor-energy features
    # fwhm_mm: smoothness of simulated trial noise along the surface (a typical 3T value)
    "subjects": {"simulate": 0, "snr": 1.0, "n_repeats": 2, "mesh": "fs_LR_32k", "vertices": "cortex",
                 "planted_layers": {}, "fwhm_mm": 4.0},
    "rois": {"names": ["V1", "V2", "V3", "V4", "LO"], "atlas": "mmp", "localizers": {}, "localizer_alpha": 0.05},
    # n_per_hemi_s2 > 0 repeats the ROI RSA with that many vertices per hemisphere (the study's
    # Fig. S2: 200, i.e. 400 per ROI) into brain_rsa_s2.csv and figS2_brain_rsa
    # split: which repeats the reliability reads: "repeats12" (the study's two), "odd_even" or
    # "all" (every repeat; Spearman-Brown corrected). Volume data get spheres of radius_mm.
    "selection": {"enabled": True, "radius_mm": 3.0, "n_per_hemi": 100, "method": "graph", "n_per_hemi_s2": 0,
                  "split": "repeats12"},
    "rsa": {"enabled": True, "metric": "correlation", "method": "spearman", "n_perm": 1000, "n_boot": 1000,
            "alternative": "two-sided",  # AI-vs-AN difference test: either direction can come out
            "trend_p": "exact",          # Mann-Kendall p in `p`: exact up to 10 layers ("normal": the paper's)
            # CIs over images (jackknife), or the paper's "vertex_subsample" (80% of vertices / units)
            "ci": "images"},
    "searchlight": {"enabled": True, "n_perm": 0, "surface": "inflated"},
    # ci, compare_over: intervals and the AI-vs-AN test over images, or the paper's vertex subsamples
    "encoding": {"enabled": True, "estimator": "romp", "n_nonzero": 5, "per": "centered", "n_perm": 1000,
                 "n_boot": 1000, "alternative": "two-sided", "ci": "images", "compare_over": "images"},
    # Supplementary Note 1: models trained on RE, best layer on the AN and on the AI images, each
    # repeat one measurement; on = ["RE"] scores held-out RE images by `cv`-fold cross-validation
    # unit: the supplement's t-tests over subjects (repeats averaged), or "measurements" (the paper's)
    "best_layer": {"enabled": True, "on": ["AN", "AI"], "per_repeat": True, "cv": 5, "unit": "subjects"},
    # after the encoding step: n_images per ROI and objective, made through the first subject's
    # encoding models of the [network] ("drive", "suppress", "controversial": first vs last ROI);
    # layer = "" takes each ROI's layer of highest held-out accuracy; target_z = 0: no early stop
    "synthesis": {"enabled": False, "n_images": 4, "objectives": ["drive"], "layer": "", "max_iter": 200,
                  "target_z": 0.0, "lr": 0.02},
    # kind = "general": any images, each ROI's RDM against each layer's (and each model RDM's);
    # "auto": general when the stimuli hold no AN and AI images and generate = false.
    # models: stimulus-table columns (category, animacy, ...) whose labels make model RDMs
    "design": {"kind": "auto", "models": ["category"]},
    "parallel": {"n_jobs": 1, "scheduler": ""},
    # memory a resampling / searchlight chunk may take per process, in GiB (0: a quarter of the
    # machine's memory); it never changes a result, so it is in no cache key
    "compute": {"memory_gb": 0.0},
    "figures": {"formats": ["png", "pdf"], "dpi": 300},
}
# Keys of one ``[[compare]]`` entry: another network analysed on the study's images (the images
# are made against [network]); ``name`` is required, ``label`` defaults to it.
COMPARE_KEYS = {"name": "", "label": "", "weights": "imagenet", "init": "default", "layers": [],
                "transform": "default"}
# Keys of one ``[[subject]]`` entry (real data); ``betas`` is required. ``betas`` may also be a
# table {L = ..., R = ...} of GIfTI files, ``trials`` a list of events files or a glob; a GLMsingle
# output names its ``designinfo`` (default: the one next to the betas), ``conditions`` (one row per
# condition), ``glmsingle_model`` and, for its pickled .npy files, ``allow_pickle = true``.
SUBJECT_KEYS = {"id": "", "betas": "", "rdms": "", "trials": "", "mask": "", "vertices": "",
                "meshes": {}, "labels": {}, "on_bad_vertices": "raise",
                "designinfo": "", "conditions": "", "glmsingle_model": "TYPED", "allow_pickle": False}
# keys whose value may take another form than their default's type
OTHER_FORMS = {"meshes": (str,), "labels": (str,), "betas": (dict,), "trials": (list,), "layers": (dict,)}

CHOICES = {
    ("stimuli", "on_low_confidence"): ("raise", "drop", "keep"),
    ("network", "init"): ("default", "kaiming"),
    ("compare", "init"): ("default", "kaiming"),
    ("network", "transform"): ("default", "imagenet", "caffe"),
    ("compare", "transform"): ("default", "imagenet", "caffe"),
    ("subjects", "mesh"): ("fs_LR_32k", "fsaverage5"),
    ("subjects", "vertices"): ("cortex", "rois"),
    ("selection", "method"): ("graph", "exact"),
    # crossnobis (general design): leave-one-run-out cross-validated distances of the ROI's trials
    ("rsa", "metric"): ("correlation", "cosine", "euclidean", "squared_euclidean", "crossnobis"),
    ("selection", "split"): ("repeats12", "odd_even", "all"),
    ("rsa", "method"): ("spearman", "pearson", "kendall_tau_a"),  # the names of brainprobe.stats / rsa
    ("searchlight", "surface"): ("inflated", "flat", "midthickness", "very_inflated"),
    ("encoding", "estimator"): ("romp", "omp", "ridge"),
    ("encoding", "per"): ("centered", "pattern", "vertex"),
    ("encoding", "alternative"): ("two-sided", "greater", "less"),
    ("rsa", "alternative"): ("two-sided", "greater", "less"),
    ("rsa", "trend_p"): ("exact", "normal"),
    ("design", "kind"): ("auto", "paper", "general"),
    ("rsa", "ci"): ("images", "vertex_subsample"),
    ("encoding", "ci"): ("images", "vertex_subsample"),
    ("encoding", "compare_over"): ("images", "vertices"),
    ("best_layer", "unit"): ("subjects", "measurements"),
}
# spellings the study file once took, with the API's name that replaced them (named in the error)
RENAMED = {("rsa", "method"): {"kendall": "kendall_tau_a"}}
POSITIVE = {("synthesis", "n_images"), ("synthesis", "max_iter"), ("synthesis", "lr"), ("stimuli", "n_images"), ("stimuli", "max_iter"), ("subjects", "n_repeats"), ("selection", "radius_mm"),
            ("selection", "n_per_hemi"), ("best_layer", "cv"), ("figures", "dpi"), ("rsa", "n_boot"),
            ("subjects", "snr")}
NON_NEGATIVE = {("subjects", "fwhm_mm"), ("synthesis", "target_z"), ("selection", "n_per_hemi_s2"), ("subjects", "simulate"), ("rsa", "n_perm"), ("searchlight", "n_perm"), ("encoding", "n_perm"),
                ("encoding", "n_boot"), ("network", "batch_size")}


class StudyConfig(dict):
    """A validated study configuration: ``config["rsa"]["n_perm"]``; paths are absolute.

    Attributes
    ----------
    path : Path or None
        The TOML file it came from.
    """

    def __init__(self, values: Mapping, path: Path | None = None):
        super().__init__(values)
        self.path = path

    @property
    def output(self) -> Path:
        return Path(self["study"]["output"])

    @property
    def seed(self) -> int:
        return int(self["study"]["seed"])

    @property
    def networks(self) -> list[dict]:
        """Every analysed network, the one the images are made against first: dicts with
        ``label``, ``name``, ``weights``, ``init``, ``layers``, ``device``, ``batch_size``."""
        primary = dict(self["network"], label=self["network"]["name"])
        shared = {"device": primary["device"], "batch_size": primary["batch_size"]}
        return [primary] + [dict(entry, **shared) for entry in self.get("compare", [])]

    def section_json(self, *sections: str) -> str:
        """The named sections as canonical JSON (what the cache keys hash)."""
        return json.dumps({s: self[s] for s in sections}, sort_keys=True, default=str)

    def to_toml(self) -> str:
        """The full configuration (defaults filled in) as TOML text, for the report."""
        lines = []
        for section, values in self.items():
            if section in ("subject", "compare"):
                continue
            lines.append(f"[{section}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
            lines.append("")
        for array in ("compare", "subject"):
            for entry in self.get(array, []):
                lines.append(f"[[{array}]]")
                lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
                lines.append("")
        return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _check_type(where: str, key: str, value, default):
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key == "on" and isinstance(value, str):  # [best_layer] on = "AI" means ["AI"]
        return [value]
    other_form = isinstance(value, OTHER_FORMS.get(key, ()))  # e.g. meshes = "fs_LR_32k" or per-hemi files
    if other_form or (key == "n_nonzero" and value == "cv") or (isinstance(value, expected) and not
                                                   (expected is int and isinstance(value, bool))):
        return value
    raise ConfigError(f"{where} {key}: expected {_type_name(default)}, found {value!r}")


def _merge_section(source: str, section: str, given, defaults: dict, label: str | None = None) -> dict:
    where = f"{source}: {label or f'[{section}]'}"
    if not isinstance(given, Mapping):
        raise ConfigError(f"{where}: expected a table, found {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(defaults)}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        merged[key] = _check_type(where, key, value, defaults[key])
        renamed = RENAMED.get((section, key), {})
        if isinstance(value, str) and value in renamed:
            raise ConfigError(f"{where} {key}: {value!r} is spelled {renamed[value]!r}, as in the Python functions "
                              f"(brainprobe.stats, brainprobe.rsa); expected one of {CHOICES[(section, key)]}")
        if (section, key) in CHOICES and merged[key] not in CHOICES[(section, key)]:
            raise ConfigError(f"{where} {key}: expected one of {CHOICES[(section, key)]}, found {value!r}")
        if (section, key) in POSITIVE and not merged[key] > 0:
            raise ConfigError(f"{where} {key}: expected a positive value, found {value!r}")
        if (section, key) in NON_NEGATIVE and merged[key] < 0:
            raise ConfigError(f"{where} {key}: expected a value >= 0, found {value!r}")
        if key == "n_boot" and merged[key] == 1:  # its "interval" would have width zero
            raise ConfigError(f"{where} n_boot: one resample gives no interval; expected 0 (no interval) or at least "
                              f"2 (1000 by default), found 1")
        if (section, key) == ("best_layer", "cv") and merged[key] < 2:
            raise ConfigError(f"{where} cv: cross-validation needs at least 2 folds, found {value!r}")
    return merged


def _resolve(base: Path, value: str) -> str:
    return str(value) if not value else str((base / os.path.expanduser(value)).resolve())


def _check_file(source: str, key: str, path: str, *, folder_ok: bool = False) -> None:
    if path and not Path(path).exists():
        raise ConfigError(f"{source}: {key}: file not found: {path}")
    if path and not folder_ok and Path(path).is_dir():
        raise ConfigError(f"{source}: {key}: expected a file, found a folder: {path}")


def _check_glmsingle_model(source: str, where: str, model: str) -> None:
    from ..data import glmsingle_model_name

    try:
        glmsingle_model_name(model)
    except ValueError as error:
        raise ConfigError(f"{source}: {where} glmsingle_model: {str(error).split(': ', 1)[1]}") from None


def _resolve_files(source: str, key: str, base: Path, value, *, folder_ok: bool = False):
    """A file, a list of files, a table {L = ..., R = ...} of files or a glob, resolved and checked
    (a folder only where ``folder_ok``: a GLMsingle output as betas)."""
    if isinstance(value, list):
        return [_resolve_files(source, f"{key}[{i}]", base, v) for i, v in enumerate(value)]
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"L", "R"})
        if unknown:
            raise ConfigError(f"{source}: {key}: expected hemispheres L and R, found {unknown}")
        return {h: _resolve_files(source, f"{key}.{h}", base, v) for h, v in value.items()}
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {key}: expected a file name, found {value!r}")
    if any(c in value for c in "*?["):
        pattern = str(base / os.path.expanduser(value))
        if not glob.glob(pattern):
            raise ConfigError(f"{source}: {key}: no file matches {pattern}")
        return pattern
    resolved = _resolve(base, value)
    _check_file(source, key, resolved, folder_ok=folder_ok)
    return resolved


def _array_entries(source: str, array: str, entries, keys: dict, required: str, what: str) -> list[tuple[str, dict]]:
    """Each entry of a ``[[array]]`` of tables with defaults filled in, and its place for messages."""
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: [[{array}]]: expected an array of tables, found {entries!r}")
    merged_entries = []
    for i, entry in enumerate(entries):
        where = f"[[{array}]] #{i + 1}"
        merged = _merge_section(source, array, entry, keys, label=where)
        if not merged[required] and not merged.get("rdms"):  # a subject of ROI RDMs has no betas
            raise ConfigError(f"{source}: {where}: {required!r} is required ({what})"
                              + (" or 'rdms' (the subject's ROI RDMs)" if array == "subject" else ""))
        merged_entries.append((where, merged))
    return merged_entries


def _subjects(source: str, entries, base: Path, n_simulated: int = 0) -> list[dict]:
    subjects = []
    simulated = {f"sub-{i + 1:02d}" for i in range(n_simulated)}
    for i, (where, merged) in enumerate(_array_entries(source, "subject", entries, SUBJECT_KEYS, "betas",
                                                       "a response file")):
        # numbered after the simulated subjects (sub-01 ... sub-NN), so ids never collide
        merged["id"] = merged["id"] or f"sub-{n_simulated + i + 1:02d}"
        if not SAFE_ID.fullmatch(merged["id"]):
            raise ConfigError(f"{source}: {where} id: expected letters, digits, '-', '_' or '.' (it names files), "
                              f"not starting with '.', found {merged['id']!r}")
        if merged["id"] in simulated:
            raise ConfigError(f"{source}: {where} id: {merged['id']!r} is the name of a simulated subject "
                              f"([subjects] simulate = {n_simulated} makes sub-01 ... sub-{n_simulated:02d}); "
                              "choose another id")
        if merged["rdms"] and merged["betas"]:
            raise ConfigError(f"{source}: {where}: give 'betas' (responses) or 'rdms' (ROI RDMs), not both")
        for key in ("betas", "rdms", "trials", "mask", "vertices", "designinfo", "conditions"):
            merged[key] = _resolve_files(source, f"{where} {key}", base, merged[key], folder_ok=key == "betas")
        _check_glmsingle_model(source, where, merged["glmsingle_model"])
        for key in ("meshes", "labels"):
            if isinstance(merged[key], str) and merged[key].lower().endswith((".nii", ".nii.gz")):
                merged[key] = _resolve(base, merged[key])  # a volume's label image
                _check_file(source, f"{where} {key}", merged[key])
                continue
            if isinstance(merged[key], str):  # e.g. meshes = "fs_LR_32k"
                continue
            unknown_hemis = sorted(set(merged[key]) - {"L", "R"})
            if unknown_hemis:
                raise ConfigError(f"{source}: {where} {key}: expected hemispheres L and R, found {unknown_hemis}")
            merged[key] = {h: _resolve(base, p) for h, p in merged[key].items()}
            for hemi, path in merged[key].items():
                _check_file(source, f"{where} {key}.{hemi}", path)
        subjects.append(merged)
    ids = [s["id"] for s in subjects]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: [[subject]]: duplicate ids {ids}")
    return subjects


def _resolve_weights(source: str, where: str, entry: dict, base: Path) -> None:
    spelled = entry["weights"].strip().lower()
    if spelled in ("none", "", "null", "false") or (spelled == "random" and entry["weights"] != "random"):
        raise ConfigError(f'{source}: {where} weights: random weights are spelled weights = "random", '
                          f"found {entry['weights']!r}")
    if entry["weights"] not in ("imagenet", "random"):
        entry["weights"] = _resolve(base, entry["weights"])
        _check_file(source, f"{where} weights", entry["weights"])


def _compared(source: str, entries, base: Path, primary: dict) -> list[dict]:
    compared = []
    for where, merged in _array_entries(source, "compare", entries, COMPARE_KEYS, "name", 'a network, e.g. "alexnet"'):
        merged["label"] = merged["label"] or merged["name"]
        _resolve_weights(source, where, merged, base)
        _check_network(source, merged, where)
        compared.append(merged)
    labels = [primary["name"]] + [entry["label"] for entry in compared]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(f"{source}: [[compare]]: networks must have distinct labels (the [network] is labelled by "
                          f"its name); {repeated} appear more than once: give each a 'label'")
    return compared


def validate(values: Mapping, *, source: str = "config", base: Path | None = None) -> StudyConfig:
    """Fill defaults into a configuration mapping and check it; raise `ConfigError` naming the key."""
    base = Path.cwd() if base is None else Path(base)
    unknown = sorted(set(values) - set(DEFAULTS) - {"subject", "compare"})
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; sections are "
                          f"{sorted(DEFAULTS) + ['compare', 'subject']}")
    config = {section: _merge_section(source, section, values.get(section, {}), defaults)
              for section, defaults in DEFAULTS.items()}
    config["subject"] = _subjects(source, values.get("subject", []), base, config["subjects"]["simulate"])
    _check_values(source, config)
    config["study"]["output"] = _resolve(base, config["study"]["output"])
    stimuli = config["stimuli"]
    if stimuli["source"] == "samples" and stimuli["n_images"] < 4:
        raise ConfigError(f"{source}: [stimuli] n_images: expected at least 4 (RDMs need pairs, encoding models "
                          f"held-out images), found {stimuli['n_images']}")
    if stimuli["source"] != "samples":
        stimuli["source"] = _resolve(base, stimuli["source"])
        found = Path(stimuli["source"])
        if not (found.is_dir() or (found.is_file() and found.suffix.lower() == ".csv")):
            raise ConfigError(f"{source}: [stimuli] source: expected 'samples', a folder of images or a CSV "
                              f"manifest, found {found} ({'missing' if not found.exists() else 'not a folder'})")
    if not 0 <= stimuli["re_threshold"] < 1:
        raise ConfigError(f"{source}: [stimuli] re_threshold: expected a probability in [0, 1), found "
                          f"{stimuli['re_threshold']!r}")
    if config["network"]["device"] != "auto":
        from .._device import resolve_device  # torch: imported only when a device is named

        try:
            resolve_device(config["network"]["device"])
        except ValueError as error:
            raise ConfigError(f"{source}: [network] {error}") from None
    _resolve_weights(source, "[network]", config["network"], base)
    _check_network(source, config["network"])
    named = config["network"]["layers"]
    design = config["design"]["kind"]
    paper_design = design == "paper" or (design == "auto" and config["stimuli"]["generate"])
    # the paper design's Mann-Kendall trend needs three points (the general design has no trend)
    if paper_design and config["rsa"]["enabled"] and named and len(named) < 3:
        raise ConfigError(f"{source}: [network] layers: the trend over layers ([rsa]) needs at least 3 layers, found "
                          f"{len(named)} ({list(named)}); name more layers or set [rsa] enabled = false")
    config["compare"] = _compared(source, values.get("compare", []), base, config["network"])
    if not config["subject"] and config["subjects"]["simulate"] == 0:
        raise ConfigError(f"{source}: no subjects: add [[subject]] entries with response files, "
                          "or set [subjects] simulate = N for simulated subjects")
    _check_rois(source, config)
    scheduler = config["parallel"]["scheduler"]
    if scheduler and not scheduler.startswith(("dask://", "tcp://")):
        raise ConfigError(f"{source}: [parallel] scheduler: expected 'dask://HOST:PORT', found {scheduler!r}")
    formats = config["figures"]["formats"]
    if not formats or not all(isinstance(f, str) for f in formats):
        raise ConfigError(f"{source}: [figures] formats: expected a list of 'png', 'pdf' or 'svg', found {formats!r}")
    bad_formats = sorted(set(formats) - {"png", "pdf", "svg"})
    if bad_formats:
        raise ConfigError(f"{source}: [figures] formats: expected png, pdf or svg, found {bad_formats}")
    unknown_kinds = [k for k in config["best_layer"]["on"] if k not in ("RE", "AN", "AI")]
    if unknown_kinds or not config["best_layer"]["on"]:
        raise ConfigError(f"{source}: [best_layer] on: expected image kinds among RE, AN, AI, found "
                          f"{config['best_layer']['on']!r}")
    _check_synthesis(source, config)
    n_nonzero = config["encoding"]["n_nonzero"]
    if n_nonzero != "cv" and (not isinstance(n_nonzero, int) or n_nonzero < 1):
        raise ConfigError(f"{source}: [encoding] n_nonzero: expected a positive integer or 'cv', found {n_nonzero!r}")
    if n_nonzero == "cv" and config["encoding"]["estimator"] != "romp":
        raise ConfigError(f"{source}: [encoding] n_nonzero = 'cv' chooses ROMP's sparsity; with estimator = "
                          f"{config['encoding']['estimator']!r} give a number")
    return StudyConfig(config)


SYNTHESIS_OBJECTIVES = ("drive", "suppress", "controversial")


def _check_synthesis(source: str, config: dict) -> None:
    objectives = config["synthesis"]["objectives"]
    unknown = [o for o in objectives if o not in SYNTHESIS_OBJECTIVES]
    if not objectives or unknown or len(set(objectives)) != len(objectives):
        raise ConfigError(f"{source}: [synthesis] objectives: expected distinct names among {SYNTHESIS_OBJECTIVES}, "
                          f"found {objectives!r}")
    if "controversial" in objectives and len(config["rois"]["names"]) < 2:
        raise ConfigError(f"{source}: [synthesis] objectives: 'controversial' needs two ROIs (the first and the last "
                          f"of [rois] names), found {config['rois']['names']!r}")
    layer = config["synthesis"]["layer"]
    layers = config["network"]["layers"]
    if layer and layers and layer not in layers:
        raise ConfigError(f"{source}: [synthesis] layer: {layer!r} is not one of the [network] layers {list(layers)}")


# a subject id names files and folders: no separators, no '..', no hidden names
SAFE_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
MAX_DPI = 1200           # a figure at 1200 dpi is already print quality; more runs out of memory
MAX_RADIUS_MM = 50.0     # geodesic disks wider than this cover most of a hemisphere


def _check_values(source: str, config: dict) -> None:
    """Ranges that the type checks cannot express, checked before any work."""
    output = config["study"]["output"]
    if not str(output).strip():
        raise ConfigError(f"{source}: [study] output: expected a folder name, found an empty string "
                          "(it would write into the study file's folder)")
    seed = config["study"]["seed"]
    if not 0 <= seed < 2**32:
        raise ConfigError(f"{source}: [study] seed: expected an integer in 0 .. 2**32 - 1, found {seed!r}")
    dpi = config["figures"]["dpi"]
    if dpi > MAX_DPI:
        raise ConfigError(f"{source}: [figures] dpi: expected at most {MAX_DPI}, found {dpi!r}")
    radius = config["selection"]["radius_mm"]
    if not math.isfinite(radius) or radius > MAX_RADIUS_MM:
        raise ConfigError(f"{source}: [selection] radius_mm: expected a finite radius up to {MAX_RADIUS_MM:g} mm, "
                          f"found {radius!r}")
    n_jobs = config["parallel"]["n_jobs"]
    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError(f"{source}: [parallel] n_jobs: expected a positive number of jobs or -1 (every core), "
                          f"found {n_jobs!r}")
    memory_gb = config["compute"]["memory_gb"]
    if not (math.isfinite(memory_gb) and memory_gb >= 0):
        raise ConfigError(f"{source}: [compute] memory_gb: expected GiB per process (0: a quarter of the machine's "
                          f"memory), found {memory_gb!r}")
    snr = config["subjects"]["snr"]
    if not math.isfinite(snr):
        raise ConfigError(f"{source}: [subjects] snr: expected a finite number, found {snr!r}")
    threshold = config["stimuli"]["threshold"]
    if not 0 < threshold < 1:
        raise ConfigError(f"{source}: [stimuli] threshold: expected a probability in (0, 1), found {threshold!r}")
    names = config["rois"]["names"]
    if not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{source}: [rois] names: expected a list of ROI names, found {names!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{source}: [rois] names: each ROI once; {repeated} appear more than once")
    if config["stimuli"]["source"] == "samples":
        from ..stimuli import SAMPLE_IMAGE_IDS

        if config["stimuli"]["n_images"] > len(SAMPLE_IMAGE_IDS):
            raise ConfigError(f"{source}: [stimuli] n_images: the bundled samples are {len(SAMPLE_IMAGE_IDS)} "
                              f"photos, found {config['stimuli']['n_images']}")


def _check_network(source: str, network: dict, where: str = "[network]") -> None:
    from ..models import available_models, import_network_builder, is_custom_network

    layers = network["layers"]
    if isinstance(layers, dict) and not all(isinstance(v, str) for v in layers.values()):
        raise ConfigError(f"{source}: {where} layers: expected {{name = \"module.path\", ...}}, found {layers!r}")
    if is_custom_network(network["name"]):
        try:
            import_network_builder(network["name"])
        except ValueError as error:
            raise ConfigError(f"{source}: {where} name: {error}") from None
        if not isinstance(layers, dict) or not layers:
            raise ConfigError(f"{source}: {where} layers: a network of your own needs its layers named, e.g. "
                              'layers = { conv1 = "features.0", fc = "classifier" } (module paths)')
        if network["weights"] == "imagenet":
            raise ConfigError(f"{source}: {where} weights: 'imagenet' exists for the built-in networks only; "
                              'give a state-dict path or weights = "random"')
        return
    if network["name"] not in available_models():
        raise ConfigError(f"{source}: {where} name: expected one of {available_models()} or "
                          f"'package.module:function', found {network['name']!r}")


def _check_rois(source: str, config: dict) -> None:
    names = config["rois"]["names"]
    config = dict(config, subject=[s for s in config["subject"] if not s["rdms"]])  # RDMs name their own ROIs
    if not names:
        raise ConfigError(f"{source}: [rois] names: expected at least one ROI")
    atlas = config["rois"]["atlas"]
    if atlas == "mmp":
        from ..roi import mmp_visual_rois

        try:
            mmp_visual_rois("L", names)
        except (KeyError, ValueError) as error:
            raise ConfigError(f"{source}: [rois] names: {error.args[0] if error.args else error}") from None
        meshes = {s["meshes"] if isinstance(s["meshes"], str) else "files" for s in config["subject"]}
        if config["subject"] and meshes - {"fs_LR_32k"}:
            raise ConfigError(f"{source}: [rois] atlas = 'mmp' needs subjects on fs_LR 32k (meshes = \"fs_LR_32k\"); "
                              "use atlas = 'labels' with label files, or 'columns' with a vertex table")
        if config["subjects"]["simulate"] and config["subjects"]["mesh"] != "fs_LR_32k":
            raise ConfigError(f"{source}: [rois] atlas = 'mmp' needs [subjects] mesh = 'fs_LR_32k'")
    elif atlas == "labels":
        missing = [s["id"] for s in config["subject"] if not s["labels"]]
        if missing:
            raise ConfigError(f"{source}: [rois] atlas = 'labels' but subjects {missing} have no labels = {{L=..., R=...}}")
    elif atlas == "columns":
        missing = [s["id"] for s in config["subject"] if not s["vertices"]]
        if missing:
            raise ConfigError(f"{source}: [rois] atlas = 'columns' but subjects {missing} have no vertices table")
    else:
        raise ConfigError(f"{source}: [rois] atlas: expected 'mmp', 'labels' or 'columns', found {atlas!r}")
    for name, contrast in config["rois"]["localizers"].items():
        if name not in names:
            raise ConfigError(f"{source}: [rois] localizers: {name!r} is not one of the ROIs {names}")
        if isinstance(contrast, str):
            contrast = {"include": contrast}
        if not isinstance(contrast, Mapping) or set(contrast) - {"include", "exclude"} or "include" not in contrast:
            raise ConfigError(f"{source}: [rois] localizers {name}: expected 'condition>baseline' or "
                              "{ include = 'objects>scrambled', exclude = 'moving>static' }, found "
                              f"{contrast!r}")
        for part, text in contrast.items():
            if not isinstance(text, str) or text.count(">") != 1 or not all(p.strip() for p in text.split(">")):
                raise ConfigError(f"{source}: [rois] localizers {name} {part}: expected 'condition>baseline' (trial "
                                  f"kinds, e.g. 'objects>scrambled'), found {text!r}")
        config["rois"]["localizers"][name] = {"include": contrast["include"], "exclude": contrast.get("exclude", "")}
    if config["rois"]["localizers"] and config["subjects"]["simulate"]:
        raise ConfigError(f"{source}: [rois] localizers: simulated subjects have no localizer trials; "
                          "use them with [[subject]] data only")
    if not 0 < config["rois"]["localizer_alpha"] < 1:
        raise ConfigError(f"{source}: [rois] localizer_alpha: expected a value in (0, 1), "
                          f"found {config['rois']['localizer_alpha']!r}")


def load_config(path) -> StudyConfig:
    """Read and validate a study TOML file; relative paths are relative to the file's folder.

    Examples
    --------
    >>> from brainprobe.pipeline import load_config
    >>> config = load_config("study.toml")  # doctest: +SKIP
    >>> config["rsa"]["n_perm"]  # doctest: +SKIP
    1000
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:  # TOML is UTF-8; a Latin-1 "é" is not
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); TOML files "
                          "are UTF-8: save it as UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    config = validate(values, source=str(path), base=path.parent.resolve())
    config.path = path.resolve()
    return config


def demo_config(output="brainprobe-demo", **sections) -> StudyConfig:
    """The demo study: 12 sample photos, AN/AI on EfficientNet-Lite0, three simulated subjects.

    Keyword arguments replace whole keys of a section, e.g. ``rsa={"n_perm": 200}``.
    """
    values = {
        "study": {"name": "brainprobe demo", "output": str(output), "seed": 0},
        "subjects": {"simulate": 3, "snr": 1.0},
    }
    for section, given in sections.items():
        values.setdefault(section, {}).update(given)
    return validate(values, source="demo")
