"""`Study`: a validated configuration run step by step into tables, figures and a report."""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg

from .. import __version__
from .._files import (
    MANIFEST,
    check_outside,
    file_sha256,
    foreign_files,
    read_hash_memo,
    record_written,
    remove_written,
    write_hash_memo,
    written_files,
)
from .._lock import LOCK, output_lock
from .._memory import memory_budget, memory_budget_bytes, release_mapped
from .._progress import tqdm
from ..data import Responses
from ..encoding import EncodingModels, kernel_store
from ..models import Activations, load_model, resolve_device
from ..models._extract import extract_within
from ..stimuli import StimulusSet, load_stimuli, save_stimuli
from ..stimuli._stimulus_set import release_pages
from . import _general as general
from . import _report, _synthesis
from . import _steps as steps
from ._cache import StepCache, atomic_write
from ._config import StudyConfig, load_config, validate
from ._inference import general_group_level, group_level
from ._tables import read_table, write_table

__all__ = ["Study", "StudyResult", "read_table", "write_table"]

# written first into a study's output folder: an unfinished study is recognized by it
STUDY_MARKER = ".brainprobe-study"
# the activations step's folder streamed per layer (when they exceed [compute] memory_gb), else activations.npz
ACTIVATIONS_FOLDER = "activations"


def _save_frames(frames: Mapping[str, pd.DataFrame], folder: Path) -> None:
    for name, frame in frames.items():
        if isinstance(frame, general.BrainRdms):  # a large image set's ROI RDMs: arrays, not rows
            frame.save(folder / f"{name}@{frame.subject}.npz")
        else:
            write_table(folder / f"{name}.csv", frame)


def _load_frames(folder: Path) -> dict[str, pd.DataFrame]:
    frames = {path.stem: read_table(path) for path in sorted(folder.glob("*.csv"))}
    for path in sorted(folder.glob("*@*.npz")):
        name, subject = path.stem.split("@", 1)
        frames[name] = general.BrainRdms.load(path, subject)
    return frames


def neighbourhood_cache() -> Path:
    """Where geodesic disks are kept between studies: they depend on the mesh and radius only.

    ``$BRAINPROBE_CACHE`` when set, else ``$XDG_CACHE_HOME/brainprobe`` (``~/.cache/brainprobe``).
    """
    if os.environ.get("BRAINPROBE_CACHE"):
        return Path(os.environ["BRAINPROBE_CACHE"]) / "neighbourhoods"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "brainprobe" / "neighbourhoods"


def _seed(base: int, *parts) -> int:
    """A seed for one (subject, step): independent streams from one study seed.

    ``parts`` are stable identities (subject id, step name, network label), never positions in a
    list: reordering subjects or simulating more changes no seed. Each part enters whole (a
    SHA-256 of its text), so ids that share a long prefix get different streams.
    """
    import hashlib

    words = []
    for part in parts:
        digest = hashlib.sha256(f"{type(part).__name__}:{part}".encode()).digest()
        words += np.frombuffer(digest, dtype="<u4").tolist()
    return int(np.random.SeedSequence([int(base), *words]).generate_state(1)[0])


@dataclass
class StudyResult:
    """What a run produced.

    Attributes
    ----------
    output : Path
    tables : dict of str to DataFrame
        Every table written to ``results/`` (name without ``.csv``).
    figures : list of Path
    report : Path
    log : DataFrame
        One row per step and subject: ``status`` is ``"computed"`` or ``"cached"``.
    """

    output: Path
    tables: dict = field(default_factory=dict)
    figures: list = field(default_factory=list)
    report: Path | None = None
    log: pd.DataFrame | None = None


class Study:
    """The study of paper 001 on a configuration: stimuli -> network -> subjects -> analyses.

    Each step's output is cached under ``<output>/.cache`` by a hash of its inputs, so a rerun
    after a change recomputes only the steps that change touches, and a killed run resumes
    where it stopped.

    Parameters
    ----------
    config : StudyConfig, mapping or path to a TOML file
    overwrite : bool
        Replace the results of a finished run in the output folder (its cache is reused), or
        write into a folder that holds other files. Only the files brainprobe wrote (listed in
        ``<output>/.brainprobe-manifest.json``) are replaced or removed; a study file of the
        user's there is never rewritten (the resolved configuration goes to
        ``study.resolved.toml``), and an output folder that holds an input is refused.
    n_jobs : int, optional
        Parallel subjects (or searchlight chunks); default ``[parallel] n_jobs``.
    scheduler : str, optional
        ``"dask://HOST:PORT"``: run the per-subject work on that Dask cluster (the output
        folder must be on a file system the workers share); default ``[parallel] scheduler``.
    progress : bool, optional
        Step display and progress bars (default: on a terminal).

    Examples
    --------
    >>> from brainprobe.pipeline import Study
    >>> result = Study("study.toml").run()  # doctest: +SKIP
    >>> result.tables["brain_rsa"].head()  # doctest: +SKIP
    """

    def __init__(self, config, *, overwrite: bool = False, n_jobs: int | None = None,
                 scheduler: str | None = None, progress: bool | None = None):
        if not isinstance(overwrite, (bool, np.bool_)):  # "no" would be true
            raise TypeError(f"overwrite: expected True or False, found {overwrite!r}")
        if isinstance(config, (str, os.PathLike)):
            config = load_config(config)
        elif not isinstance(config, StudyConfig):
            config = validate(config)
        self.config = config
        self.overwrite = bool(overwrite)
        self.n_jobs = _cap_jobs(int(n_jobs if n_jobs is not None else config["parallel"]["n_jobs"]))
        self.scheduler = scheduler if scheduler is not None else config["parallel"]["scheduler"]
        if self.scheduler and not self.scheduler.startswith(("dask://", "tcp://")):
            raise ValueError(f"scheduler: expected 'dask://HOST:PORT', found {self.scheduler!r}")
        self.progress = progress
        self.output = config.output
        self.cache = StepCache(self.output / ".cache", salt=__version__)
        self.log_: list[dict] = []
        self._models: dict = {}
        self._written: set[str] = set()

    # -- output folder ----------------------------------------------------------------------------
    def _prepare_output(self) -> None:
        """Check the output folder and clear what an earlier run of brainprobe wrote there.

        brainprobe lists every file it writes in ``<output>/.brainprobe-manifest.json``; a folder
        without that list is the user's, an overwrite removes only the files it lists (the step
        cache is kept), and a study file of the user's in the folder is never rewritten.
        """
        out = self.output
        self._check_output_place()
        listed = written_files(out)
        if out.exists() and any(p.name != LOCK for p in out.iterdir()):
            finished = "report.html" in listed
            # an unfinished study is known by its own marker: a folder of `brainprobe adversarial` or
            # `synth` also has a manifest, and is never this command's to clean
            ours = finished or STUDY_MARKER in listed
            if not self.overwrite and (finished or not ours):
                what = ("the results of a finished study" if finished else "files written by another brainprobe "
                        "command" if listed else "files that brainprobe did not write")
                raise FileExistsError(f"output {out} holds {what}; pass --overwrite (overwrite=True) to replace "
                                      "them (the step cache is reused), or choose another [study] output")
            if ours:
                inputs = self._inputs_inside(out)  # e.g. the study.toml it wrote, edited and run again
                remove_written(out, keep=inputs)  # an earlier run's files only; the user's stay where they are
                if inputs:  # an input of this run is the user's from now on: never removed by a later run
                    record_written(out, written_files(out) - inputs, replace=True)
        out.mkdir(parents=True, exist_ok=True)
        self._written = set()
        self._write_file(STUDY_MARKER, lambda path: atomic_write(path, json.dumps({"study": self.config["study"]["name"]})))
        own_copy = "study.toml"
        user_file = self.config.path is not None and Path(self.config.path).resolve() == (out / own_copy).resolve()
        if user_file or foreign_files(out, [own_copy]):
            own_copy = "study.resolved.toml"
        self._write_file(own_copy, lambda path: atomic_write(path, self.config.to_toml()))

    def _check_output_place(self) -> None:
        """Refuse an output that is a file, holds an input or lies in an image folder (before the lock)."""
        out = self.output
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"output {out} exists and is not a folder")
        source = self.config["stimuli"]["source"]
        check_outside(out, self._inputs(), {"[stimuli] source": source if source != "samples" else None})

    def _inputs_inside(self, out: Path) -> set[str]:
        """The files this run reads that lie in ``out`` (relative paths): the study file, if there."""
        if self.config.path is None:
            return set()
        path = Path(self.config.path).resolve()
        root = out.resolve()
        return {path.relative_to(root).as_posix()} if root in path.parents else set()

    def _inputs(self) -> dict:
        """The files and folders a run reads (they must lie outside its output folder)."""
        config = self.config
        inputs = {}
        if config["stimuli"]["source"] != "samples":
            inputs["[stimuli] source"] = config["stimuli"]["source"]
        for network in config.networks:
            if network["weights"] not in ("imagenet", "random", ""):
                inputs[f"{network['label']} weights"] = network["weights"]
        for entry in config["subject"]:
            for key in ("betas", "rdms", "trials", "mask", "vertices", "designinfo", "conditions", "meshes", "labels"):
                value = entry.get(key)
                # a file, a list of files or globs, or a table {L = ..., R = ...} of files
                named = value if isinstance(value, dict) else dict(enumerate(value)) if isinstance(value, list) else \
                    {"": value}
                for part, path in named.items():
                    if not isinstance(path, str) or not path or (key in ("meshes", "labels") and part == ""):
                        continue  # meshes = "fs_LR_32k" names a template, not a file
                    inputs[f"[[subject]] {entry['id']} {key}{f'.{part}' if part != '' else ''}"] = path
        return inputs

    def _write_file(self, relative: str, write) -> Path:
        """Write ``<output>/relative`` with ``write(path)``, listed in the manifest before it exists;
        a file of the user's at that place is an error, never replaced."""
        clash = foreign_files(self.output, [relative])
        if clash and relative not in self._written:
            raise FileExistsError(f"{self.output / relative}: not written by brainprobe (not in "
                                  f"{self.output / MANIFEST}); move it away or choose another [study] output")
        record_written(self.output, [relative])
        self._written.add(relative)
        path = self.output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        return path

    def _say(self, text: str) -> None:
        if self.progress is not False:
            tqdm.write(text)

    def _record(self, record: dict) -> None:
        self.log_.append(record)
        self._say(f"  {record['step']:<16} {record['label']:<8} {record['status']:<8} {record['seconds']:8.1f} s")

    def _step(self, step, key, compute, save, load, label="", into_folder=False):
        value, record = self.cache.run(step, key, compute, save, load, label=label, into_folder=into_folder)
        self._record(record)
        return value

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> StudyResult:
        """Run every step (or load it from the cache) and write results, figures and report.

        The output folder is locked while the study runs: a second run into it stops with an
        error naming the run that holds it (`brainprobe._lock.OutputLockedError`).
        """
        if self.scheduler:
            _check_scheduler(self.scheduler)
        self._check_output_place()
        # ridge kernels of the same images are decomposed once for every subject, fold and rerun
        with output_lock(self.output), kernel_store(self.cache.root / "kernels"):
            return self._run_locked()

    def _run_locked(self) -> StudyResult:
        start = time.perf_counter()
        config = self.config
        self._prepare_output()
        self._say(f"brainprobe study {config['study']['name']!r} -> {self.output}")
        # read (and checked) here, before any heavy work; each task then receives its subject
        entries = [entry for entry in config["subject"] if not entry.get("rdms")]
        given_rdms = {entry["id"]: general.read_rdms(entry) for entry in config["subject"] if entry.get("rdms")}
        read = [steps.read_subject(entry) for entry in entries]
        for entry, (responses, has_kinds) in zip(entries, read, strict=True):
            if has_kinds:  # ROIs and localizers checked now; kinds from the stimuli wait for them
                steps.prepare_subject(responses, entry, config, general=steps.may_be_general(config))
        primary = config.networks[0]  # the network the AN and AI images are made against
        memo_path = self.cache.root / "file-hashes.json"
        memo = read_hash_memo(memo_path)  # hashes of input files, re-read only when a file changed
        self._digests = {"source": _inputs_digest(config, memo=memo)}
        self._digests.update({n["label"]: _inputs_digest(config, n, memo) for n in config.networks})
        write_hash_memo(memo_path, memo)
        stimuli_key = self.cache.key("stimuli", config.section_json("stimuli"), _network_json(primary), config.seed,
                                     self._digests["source"], self._digests[primary["label"]])
        # into the step's folder: the images made are dropped once saved, and read back as a memory map
        stimuli, stimulus_table = self._step(
            "stimuli", stimuli_key,
            lambda folder: steps.make_stimuli(self._model(primary), config, progress=self.progress),
            _save_stimuli, _load_stimuli, into_folder=True)
        self._general = steps.is_general(config, stimulus_table)
        real_subjects = [steps.prepare_subject(responses, entry, config, stimulus_table, has_kinds=has_kinds,
                                               general=self._general)
                         for entry, (responses, has_kinds) in zip(entries, read, strict=True)]
        general.check_rdm_subjects(given_rdms, stimulus_table, self._general)
        for responses in real_subjects:
            steps.check_images(responses, stimulus_table)
        tables: dict[str, list[pd.DataFrame]] = {"stimuli": [stimulus_table]}
        with memory_budget(_memory_gb(config)):
            analysed = self._analyse_networks(stimuli, stimulus_table, stimuli_key, tables)
        release_pages(stimuli)  # the images the networks read: from here on only Fig. 1's few are

        tasks = [{"index": i, "entry": None, "responses": None} for i in range(config["subjects"]["simulate"])]
        tasks += [{"index": len(tasks) + i, "entry": entry, "responses": responses}
                  for i, (entry, responses) in enumerate(zip(entries, real_subjects, strict=True))]
        tasks += [{"index": len(tasks) + i, "entry": entry, "responses": None, "rdms": given_rdms[entry["id"]]}
                  for i, entry in enumerate(e for e in config["subject"] if e.get("rdms"))]
        self._warm_neighbourhoods(real_subjects)
        inner_jobs = self.n_jobs if len(tasks) == 1 or self.n_jobs == 1 else 1
        shared = {"config": dict(config), "stimuli_key": stimuli_key, "cache_root": str(self.cache.root),
                  "salt": self.cache.salt, "inner_jobs": inner_jobs, "general": self._general,
                  "networks": [{"label": label, "key": a["key"], "layers": a["layers"]} for label, a in analysed.items()]}
        activations = {label: a["activations"] for label, a in analysed.items()}
        outcomes = self._map_subjects(tasks, shared, stimuli, stimulus_table, activations)
        self._rdm_sets = {}  # subject -> BrainRdms: ROI RDMs of image sets too large for brain_rdms.csv
        for frames, records in outcomes:
            for record in records:
                self._record(record)
            for name, frame in frames.items():
                if isinstance(frame, general.BrainRdms):
                    self._rdm_sets[frame.subject] = frame
                else:
                    tables.setdefault(name, []).append(frame)
        del outcomes
        combined = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
        combined.update(_across_subjects(combined, {label: a["layers"] for label, a in analysed.items()},
                                         config["best_layer"]["unit"]))
        if self._general:
            several = len(analysed) > 1
            order = [general.candidate_name(label, layer, several) for label, a in analysed.items() for layer in a["layers"]]
            combined.update(general.general_group(combined, order, config, _seed(config.seed, "general_group"),
                                                  rdm_sets=self._rdm_sets))
            combined.update(general_group_level(combined))
        else:
            combined.update(group_level(combined, config))
        self._synthesized = None
        if config["synthesis"]["enabled"]:
            synthesis_tables, images = self._synthesis(tasks, stimuli, analysed, combined, stimuli_key, shared,
                                                       stimulus_table)
            combined.update(synthesis_tables)
            self._synthesized = (images, synthesis_tables["synthesis"])
        result = StudyResult(self.output, combined, log=pd.DataFrame(self.log_))
        self._write(result, stimuli, time.perf_counter() - start)
        self._say(f"report: {result.report}")
        return result

    def _model(self, network: dict):
        """The network's LayeredModel, loaded once, and only when one of its steps computes."""
        if network["label"] not in self._models:
            weights = None if network["weights"] == "random" else network["weights"]
            device = None if network["device"] == "auto" else network["device"]
            layers = network["layers"] if isinstance(network["layers"], Mapping) else None
            self._models[network["label"]] = load_model(network["name"], weights, layers=layers, seed=self.config.seed,
                                                         init=network["init"], transform=network.get("transform", "default"),
                                                         device=device)
        return self._models[network["label"]]

    def _analyse_networks(self, stimuli, stimulus_table, stimuli_key, tables) -> dict[str, dict]:
        """Activations and network RSA of every network; returns, per label, its ``activations``,
        ``layers`` and the activations' cache ``key``; RSA tables are appended to ``tables``."""
        config = self.config
        several = len(config.networks) > 1
        analysed: dict[str, dict] = {}
        for network in config.networks:
            label = network["label"]
            key = self.cache.key("activations", stimuli_key, _network_json(network), network["layers"] or None,
                                 self._digests[network["label"]])
            activations = self._step(
                "activations", key,
                lambda folder, network=network: extract_within(
                    self._model(network), stimuli, steps.network_layers(self._model(network), network),
                    spill=folder / ACTIVATIONS_FOLDER, memory_bytes=memory_budget_bytes(), progress=self.progress),
                _save_activations, _load_activations, label=label if several else "", into_folder=True)
            analysed[label] = {"activations": activations, "layers": activations.layers, "key": key}
            if config["rsa"]["enabled"] and not self._general:
                rsa_key = self.cache.key("network_rsa", key, config.section_json("rsa"), config.seed)
                frames = self._step("network_rsa", rsa_key,
                                    lambda activations=activations: steps.network_rsa(
                                        activations, stimulus_table, activations.layers, config),
                                    _save_frames, _load_frames, label=label if several else "")
                for name, frame in frames.items():
                    tables.setdefault(name, []).append(_with_network(frame, label))
            if not self._general:  # the tables behind the RDM figure (RE, AN and AI RDMs of each layer)
                rdm_key = self.cache.key("network_rdms", key, stimuli_key, config["rsa"]["metric"])
                frames = self._step("network_rdms", rdm_key,
                                    lambda activations=activations: steps.network_rdm_tables(
                                        activations, stimulus_table, activations.layers, config["rsa"]["metric"]),
                                    _save_frames, _load_frames, label=label if several else "")
                for name, frame in frames.items():
                    tables.setdefault(name, []).append(_with_network(frame, label))
        return analysed

    def _synthesis(self, tasks, stimuli, analysed, tables, stimuli_key, shared, stimulus_table):
        """``[synthesis]``: images through the first subject's encoding models of the [network].

        The models, and the folds of their held-out accuracy, are those of the encoding step
        (the ``encoding_models`` cache step, same key): fitted once per (subject, ROI, layer, cv).
        """
        config = self.config
        primary = config.networks[0]
        task = tasks[0]
        label = task["entry"]["id"] if task["entry"] else f"sub-{task['index'] + 1:02d}"
        selection = tables["selection"][tables["selection"]["subject"] == label]
        files = _file_digests(task["entry"]) if task["entry"] else {}
        network = analysed[primary["label"]]
        key = self.cache.key("synthesis", stimuli_key, network["key"], files, config.seed, label,
                             config.section_json("synthesis", "encoding", "best_layer", "selection", "rois", "subjects"))

        def compute():
            activations = {label: a["activations"] for label, a in analysed.items()}
            responses_key = _responses_key(task, shared, config, self.cache, stimulus_table, files or None)
            responses = task["responses"] if task["entry"] else self._step(
                "responses", responses_key, lambda: _simulate(task, shared, config, stimuli, activations),
                _save_responses, _load_responses, label=label)
            described = {"label": primary["label"], "key": network["key"], "layers": network["layers"]}
            heldout = _heldout_layers(config, described, shared, task["index"])
            train_kind = None if shared["general"] else "RE"  # the subject step's fits: one cache entry
            models_key = _models_key(self.cache, _selection_key(self.cache, responses_key, config), described, config,
                                     heldout, train_kind)
            models = self._step("encoding_models", models_key,
                                lambda: steps.encoding_models(responses, selection, network["activations"],
                                                              network["layers"], config, heldout, train_kind),
                                _save_models, _load_models,
                                label=label if len(analysed) == 1 else f"{label} {primary['label']}")
            return _synthesis.synthesize_for_subject(self._model(primary), network["activations"], network["layers"],
                                                     responses, selection, stimuli, config,
                                                     _seed(config.seed, label, "synthesis"), progress=self.progress,
                                                     models=models)

        return self._step("synthesis", key, compute, _synthesis.save_synthesis, _synthesis.load_synthesis,
                          label=label)

    def _warm_neighbourhoods(self, real_subjects) -> None:
        """Compute the disks of every distinct mesh once, before the subjects run in parallel."""
        config = self.config
        if not (config["selection"]["enabled"] or config["searchlight"]["enabled"]):
            return
        meshes = [m for r in real_subjects for m in r.meshes.values()]
        if config["subjects"]["simulate"]:
            meshes += list(steps.study_meshes(config["subjects"]["mesh"]).values())
        if not meshes:
            return
        start = time.perf_counter()
        steps.neighbourhoods({mesh.digest(): mesh for mesh in meshes}, config, neighbourhood_cache())
        self._say(f"  {'neighbourhoods':<16} {'':<8} {'ready':<8} {time.perf_counter() - start:8.1f} s")

    def _map_subjects(self, tasks, shared, stimuli, stimulus_table, activations) -> list:
        from joblib import Parallel, delayed, parallel_config

        calls = [delayed(_run_subject)(task, shared, stimuli, stimulus_table, activations) for task in tasks]
        bar = tqdm(total=len(calls), desc="subjects", unit="subject", disable=not self.progress if self.progress is not None else None)
        context = contextlib.nullcontext()
        client = None
        if self.scheduler:
            from dask.distributed import Client

            client = Client(self.scheduler.replace("dask://", "tcp://"))
            context = parallel_config(backend="dask")
        n_jobs = -1 if self.scheduler else min(self.n_jobs, len(calls)) or 1
        try:
            with context:
                outcomes = []
                for outcome in Parallel(n_jobs=n_jobs, return_as="generator")(calls):
                    outcomes.append(outcome)
                    bar.update()
        finally:
            bar.close()
            if client is not None:
                client.close()
        return outcomes

    # -- outputs -----------------------------------------------------------------------------------
    def _surface_maps(self, tables: Mapping) -> dict:
        """Surface searchlight maps as GIfTI: the general design's ``r_<candidate>`` columns, or the
        paper design's similarity of each pair (``RE-AN``, ``RE-AI``)."""
        general_table = tables.get("general_searchlight")
        if general_table is not None:
            return general.searchlight_surfaces(general_table, self._mesh_sizes(general_table))
        paper = tables.get("searchlight")
        if paper is None or not {"hemi", "vertex", "pair", "similarity"} <= set(paper.columns):
            return {}
        wide = paper.pivot_table(index=["subject", "hemi", "vertex"], columns="pair", values="similarity",
                                 sort=False, dropna=False).reset_index()
        pairs = list(dict.fromkeys(paper["pair"]))
        return general.searchlight_surfaces(wide, self._mesh_sizes(wide), columns=pairs)

    def _mesh_sizes(self, table: pd.DataFrame | None) -> dict:
        """Vertices per hemisphere of each surface subject's meshes (its ``meshes``, else
        ``[subjects] mesh`` for simulated subjects), for maps written as GIfTI."""
        if table is None or "hemi" not in table or not table["hemi"].isin(["L", "R"]).any():
            return {}
        given = {entry["id"]: entry.get("meshes") for entry in self.config["subject"]}
        sizes, loaded = {}, {}
        for subject in table["subject"].unique():
            mesh = given.get(subject) or (self.config["subjects"]["mesh"] if subject not in given else None)
            if not mesh:
                continue
            key = repr(mesh)
            if key not in loaded:
                loaded[key] = {hemi: m.n_vertices for hemi, m in steps.study_meshes(mesh).items()}
            sizes[subject] = loaded[key]
        return sizes

    def _write(self, result: StudyResult, stimuli, seconds: float) -> None:
        for name, frame in result.tables.items():
            self._write_file(f"results/{name}.csv", lambda path, frame=frame: write_table(path, frame))
        for subject, found in getattr(self, "_rdm_sets", {}).items():
            self._write_file(f"results/{_report.RDM_FOLDER}/{subject}.npz", lambda path, found=found: found.save(path))
        masks = {entry["id"]: entry["mask"] for entry in self.config["subject"] if entry.get("mask")}
        for subject, image in general.searchlight_volumes(result.tables.get("general_searchlight"), masks).items():
            self._write_file(f"maps/{subject}_searchlight.nii.gz", lambda path, image=image: image.to_filename(path))
        for subject, hemis in self._surface_maps(result.tables).items():
            for hemi, image in hemis.items():
                self._write_file(f"maps/{subject}_hemi-{hemi}_searchlight.func.gii",
                                 lambda path, image=image: image.to_filename(path))
        images = _report.fig1_images(stimuli, result.tables["stimuli"])
        self._write_file(f"results/{_report.FIG1_IMAGES}", lambda path: _report.write_fig1_images(path, images))
        self._write_file("steps.csv", lambda path: write_table(path, result.log))
        staging = self.output / f".figures.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            # drawn from the files just written, not from memory: every figure can be drawn again from results/
            drawn = _report.redraw_figures(self.output / "results", self.config, staging)
            if getattr(self, "_synthesized", None) is not None:
                drawn += _synthesis.synthesis_figures(*self._synthesized, self.config, staging)
            result.figures = [self._write_file(f"figures/{p.name}", lambda path, p=p: os.replace(p, path)) for p in drawn]
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        device = resolve_device(None if self.config["network"]["device"] == "auto" else self.config["network"]["device"])
        # what differs between two runs of one study lives here and in steps.csv, not in report.html
        self._write_file("run.json", lambda path: atomic_write(path, json.dumps(
            {"finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "seconds": round(seconds, 3), "device": str(device), "output": str(self.output)}, indent=2) + "\n"))
        result.report = self._write_file("report.html", lambda path: _report.write_report(
            self.output, result, self.config, seconds=seconds, device=str(device)))


def _check_scheduler(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, before any work, when nothing answers at the scheduler's address."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address.replace("dask://", "tcp://"))
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ValueError(f"scheduler: expected 'dask://HOST:PORT', found {address!r}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        raise ValueError(f"scheduler {address}: nothing answers at {host}:{port} within {timeout:g} s "
                         f"({error.strerror or type(error).__name__}); start the Dask scheduler or check the address"
                         ) from None


def _cap_jobs(n_jobs: int) -> int:
    """Parallel jobs, at most the machine's cores (-1: all of them); more is lowered with a warning."""
    cores = os.cpu_count() or 1
    if n_jobs == -1:
        return cores
    if n_jobs < 1:
        raise ValueError(f"n_jobs: expected a positive number of jobs or -1 (every core), found {n_jobs}")
    if n_jobs > cores:
        warnings.warn(f"n_jobs = {n_jobs} is more than the {cores} CPU cores here; using {cores}", stacklevel=3)
        return cores
    return n_jobs


def _network_json(network: dict) -> str:
    """What of a network's settings changes its activations (not its label, layers or device)."""
    return json.dumps({k: v for k, v in network.items() if k not in ("label", "layers", "device")}, sort_keys=True)


def _with_network(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The table with a leading ``network`` column (cached tables do not hold it: labels can change)."""
    out = frame.drop(columns="network", errors="ignore")
    out.insert(0, "network", label)
    return out


def _across_subjects(tables: dict, layers: dict, unit: str = "subjects") -> dict:
    """Tests that need every subject: the supplement's paired t-tests on best-layer proportions, per network."""
    from ..encoding import best_layer_tests

    proportions = tables.get("best_layer_proportions")
    if proportions is None or proportions["subject"].nunique() < 2:
        return {}
    tests = []
    by = ["network"] + (["test_kind"] if "test_kind" in proportions else [])
    for key, part in proportions.groupby(by, sort=False):
        label = key[0]
        if len(layers[label]) >= 4:
            rois = list(dict.fromkeys(part["roi"]))
            test = best_layer_tests(part.drop(columns=by), low=layers[label][:2], high=layers[label][-2:],
                                    early_roi=rois[0], late_roi=rois[-1], unit=unit)
            if len(by) == 2:
                test.insert(0, "test_kind", key[1])
            tests.append(_with_network(test, label))
    return {"best_layer_tests": pd.concat(tests, ignore_index=True)} if tests else {}


# -- per-subject work (module level: it runs in worker processes) ----------------------------------
def _run_subject(task: dict, shared: dict, stimuli: StimulusSet, stimulus_table: pd.DataFrame,
                 activations: dict[str, Activations]) -> tuple[dict, list]:
    # the budget is set where the work runs: in this process, a joblib worker or a Dask worker
    with memory_budget(_memory_gb(shared["config"])), kernel_store(Path(shared["cache_root"]) / "kernels"):
        return _run_subject_within_budget(task, shared, stimuli, stimulus_table, activations)


def _memory_gb(config) -> float | None:
    """``[compute] memory_gb`` as a budget for `brainprobe.stats.memory_budget` (0: the default)."""
    return float(config.get("compute", {}).get("memory_gb", 0)) or None


def _run_subject_within_budget(task: dict, shared: dict, stimuli: StimulusSet, stimulus_table: pd.DataFrame,
                               activations: dict[str, Activations]) -> tuple[dict, list]:
    config = StudyConfig(shared["config"])
    cache = StepCache(shared["cache_root"], salt=shared["salt"])
    index, entry = task["index"], task["entry"]
    label = entry["id"] if entry else f"sub-{index + 1:02d}"
    records, frames = [], {}
    if task.get("rdms") is not None:  # a subject given as ROI RDMs: the RDM comparisons only
        key = cache.key("general_rsa", _file_digests(entry), config.section_json("rsa", "design"),
                        [network["key"] for network in shared["networks"]], shared["stimuli_key"], config.seed)
        value, record = cache.run("general_rsa", key, lambda: general.general_rsa_from_rdms(
            task["rdms"], shared["networks"], activations, stimulus_table, label, config,
            _seed(config.seed, label, "rsa")), _save_frames, _load_frames, label=label)
        return value, [record]

    def step(name, key, compute, save, load, network=None):
        value, record = cache.run(name, key, compute, save, load,
                                  label=label if network is None else f"{label} {network}")
        records.append(record)
        return value

    responses_key = _responses_key(task, shared, config, cache, stimulus_table)
    if entry is None:
        responses = step("responses", responses_key,
                         lambda: _simulate(task, shared, config, stimuli, activations), _save_responses, _load_responses)
    else:
        responses = task["responses"]
    memo = {}

    def averaged():  # one pattern per image, computed once and only if a step needs it
        if not memo:
            memo["value"] = steps.image_patterns(responses, stimulus_table)
        return memo["value"]

    needs_disks = config["selection"]["enabled"] or config["searchlight"]["enabled"]
    disks = steps.neighbourhoods(responses.meshes, config, neighbourhood_cache()) if needs_disks and responses.meshes else None
    if needs_disks and disks is None:  # volume data: spheres on the voxel grid
        disks = steps.volume_neighbourhoods(responses, config)
    selection_key = _selection_key(cache, responses_key, config)
    selection = step("selection", selection_key, lambda: steps.selection_tables(responses, disks, config),
                     lambda table, folder: write_table(folder / "selection.csv", table),
                     lambda folder: read_table(folder / "selection.csv"))
    frames["selection"] = selection
    if shared["general"]:
        frames.update(_general_subject(config, cache, step, responses, selection, averaged, activations, shared,
                                       selection_key, label, index, disks))
        return frames, records
    if config["rsa"]["enabled"]:
        key = cache.key("brain_rsa", selection_key, config.section_json("rsa"), shared["stimuli_key"], config.seed)
        frames.update(step("brain_rsa", key, lambda: steps.brain_rsa(averaged(), selection, label, config,
                                                                      _seed(config.seed, label, "rsa")),
                           _save_frames, _load_frames))
    if config["rsa"]["enabled"] and config["selection"]["n_per_hemi_s2"] and config["selection"]["enabled"]:
        frames.update(_supplementary_selection_rsa(config, cache, step, responses, disks, averaged, responses_key,
                                                   shared, label, index))
    if config["searchlight"]["enabled"] and disks is not None:
        key = cache.key("searchlight", responses_key, config.section_json("searchlight"),
                        config["rsa"]["metric"], config["rsa"]["method"],
                        config["selection"]["radius_mm"], config["selection"]["method"], shared["stimuli_key"], config.seed)
        frames["searchlight"] = step(
            "searchlight", key,
            lambda: steps.searchlight_map(responses, averaged(), disks, config, _seed(config.seed, label, "searchlight"),
                                          n_jobs=shared["inner_jobs"]),
            lambda table, folder: write_table(folder / "searchlight.csv", table),
            lambda folder: read_table(folder / "searchlight.csv"))
    if config["encoding"]["enabled"] or config["best_layer"]["enabled"]:
        several = len(shared["networks"]) > 1
        parts: dict[str, list] = {}
        for network in shared["networks"]:
            key = cache.key("encoding", selection_key, network["key"], network["layers"],
                            config.section_json("encoding", "best_layer"), config.seed)

            def fitted(network=network):  # cached apart: the synthesis step reads the same fits and folds
                heldout = _heldout_layers(config, network, shared, index)
                return step("encoding_models", _models_key(cache, selection_key, network, config, heldout),
                            lambda: steps.encoding_models(responses, selection, activations[network["label"]],
                                                          network["layers"], config, heldout),
                            _save_models, _load_models, network=network["label"] if several else None)

            result = step("encoding", key,
                          lambda network=network, fitted=fitted: steps.encoding_analysis(
                              responses, selection, activations[network["label"]], network["layers"], config,
                              _seed(config.seed, label, "encoding"), models=fitted()),
                          _save_frames, _load_frames, network=network["label"] if several else None)
            for name, frame in result.items():
                parts.setdefault(name, []).append(_with_network(frame, network["label"]))
        frames.update({name: pd.concat(found, ignore_index=True) for name, found in parts.items()})
    return frames, records


def _responses_key(task: dict, shared: dict, config, cache: StepCache, stimulus_table: pd.DataFrame,
                   files: dict | None = None) -> str:
    """The cache key of a subject's responses (simulated ones: the ``responses`` step); ``files``:
    the subject's `_file_digests`, when already computed."""
    entry = task["entry"]
    if entry is None:
        planted = config["subjects"]["planted_layers"]
        return cache.key("responses", shared["stimuli_key"], config.section_json("subjects", "rois"),
                         config.seed, task["index"], shared["networks"][0]["key"] if planted else "")
    # the trials' kinds can come from the stimulus table: relabelling an image changes the subject
    return cache.key("responses", entry, _file_digests(entry) if files is None else files, config.section_json("rois"),
                     _table_digest(stimulus_table))


def _selection_key(cache: StepCache, responses_key: str, config) -> str:
    return cache.key("selection", responses_key, _selection_json(config), config["rsa"]["metric"],
                     config["rsa"]["method"])


def _simulate(task: dict, shared: dict, config, stimuli: StimulusSet, activations: dict):
    """A simulated subject's responses (with its planted layers, if any)."""
    label = f"sub-{task['index'] + 1:02d}"
    planted = config["subjects"]["planted_layers"]
    return steps.simulated_subject(stimuli, config, task["index"],
                                   _planted_features(planted, activations, stimuli, shared,
                                                     _seed(config.seed, label, "planted")))


def _heldout_layers(config, network: Mapping, shared: dict, index: int) -> list:
    """The layers whose cross-validated predictions the encoding models step computes with its
    fit: every layer in the general design (its encoding table scores them all) or when
    `best_layer` scores RE (it reads them all), the synthesis candidates for the synthesis step's
    subject (the first) and network (the first), none otherwise."""
    if shared["general"] and config["encoding"]["enabled"]:
        return list(network["layers"])
    if config["best_layer"]["enabled"] and "RE" in config["best_layer"]["on"]:
        return list(network["layers"])
    if config["synthesis"]["enabled"] and index == 0 and network["label"] == shared["networks"][0]["label"]:
        return [config["synthesis"]["layer"]] if config["synthesis"]["layer"] else list(network["layers"])
    return []


def _models_key(cache: StepCache, selection_key: str, network: Mapping, config, heldout: list,
                train_kind: str | None = "RE") -> str:
    """What a fit of the encoding models depends on: the responses and selection, the activations,
    layers, the estimator (class and every parameter), the training images (a kind, or None:
    every image) and the folds of the held-out predictions."""
    estimator = steps.make_estimator(config)
    described = [type(estimator).__name__, json.dumps(estimator.get_params(), sort_keys=True, default=str)]
    return cache.key("encoding_models", selection_key, network["key"], network["layers"], described, train_kind,
                     config["best_layer"]["cv"] if heldout else None, heldout)


def _planted_features(planted: Mapping, activations: dict, stimuli: StimulusSet, shared: dict,
                      index_seed: int = 0) -> dict | None:
    """``[subjects] planted_layers``: each simulated ROI reads one layer of the [network] (the
    layer's leading pattern-correlation components, `_layer_geometry`)."""
    if not planted:
        return None
    network = shared["networks"][0]
    found = activations[network["label"]]
    unknown = {roi: layer for roi, layer in planted.items() if layer not in network["layers"]}
    if unknown:
        raise ValueError(f"[subjects] planted_layers: {unknown} name no layer of {network['label']}; "
                         f"layers are {network['layers']}")
    rows = pd.Series(np.arange(len(found.image_ids)), index=list(found.image_ids)).loc[stimuli.image_ids].to_numpy()
    # the layer as it is (a memory map when streamed): `_layer_geometry` reads a block of units at a time;
    # its leading components are the same for every subject (only the rotation is the subject's)
    return {roi: _layer_geometry(found[layer].reshape(len(found.image_ids), -1), seed=[index_seed, k], rows=rows,
                                 memo=(network["key"], layer) if network.get("key") else None)
            for k, (roi, layer) in enumerate(planted.items())}


# the last layers' leading components (`_layer_geometry`), by (activations key, layer, components,
# rows): simulated subjects of one study read the same layers (at 10,000 images conv2's Gram
# matrix is minutes of work a subject); a few (n_images x 10) arrays
_LEADING: dict = {}
_LEADING_SIZE = 8


def _unit_blocks(n_images: int, n_units: int) -> list[slice]:
    """Blocks of units whose float64 copy for every image is at most 1 GiB (65,536 units up to
    2,048 images). The blocks follow from the shape alone, never from the machine: the sums over
    them, and so a planted subject, are the same everywhere."""
    chunk = max(1, min(65536, 2**27 // max(1, n_images)))
    return [slice(start, start + chunk) for start in range(0, n_units, chunk)]


def _layer_geometry(units: np.ndarray, n_components: int = 10, seed=0, rows: np.ndarray | None = None,
                    memo: tuple | None = None) -> np.ndarray:
    """Features (n_images, n_components) whose image geometry is the layer's correlation geometry.

    Each image's pattern is standardized over units (a correlation-distance RDM reads exactly
    that); the leading eigenvectors of the images' Gram matrix, scaled by their singular values,
    keep most of it (a deep layer's RDM lives in a few components). A random rotation then
    spreads the variance evenly over the features: `simulate_subject` standardizes every feature
    and reads a few per vertex, which would otherwise give the weakest component the weight of
    the strongest. Z-scoring units and projecting them at random (the earlier simulator) kept
    too little: a ROI reading fc7 matched conv2's RDM better than fc7's.
    """
    rows = np.arange(units.shape[0]) if rows is None else np.asarray(rows)
    key = None if memo is None else (*memo, n_components, rows.tobytes())
    if key is None or key not in _LEADING:
        leading = _leading_components(units, rows, n_components)
        if key is not None:
            if len(_LEADING) >= _LEADING_SIZE:
                _LEADING.pop(next(iter(_LEADING)))
            _LEADING[key] = leading
    leading = _LEADING[key] if key is not None else leading
    k = leading.shape[1]
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(k, k)))
    return leading @ rotation


def _leading_components(units: np.ndarray, rows: np.ndarray, n_components: int) -> np.ndarray:
    """The k leading eigenvectors of the rows' pattern-correlation Gram matrix, scaled by the
    square roots of their eigenvalues (`_layer_geometry` before its rotation)."""
    n_images, n_units = len(rows), units.shape[1]
    blocks = _unit_blocks(n_images, n_units)

    def block_of(b: slice) -> np.ndarray:  # the rows' float64 copy of one block (a memory map is read there only)
        block = np.asarray(units[:, b][rows], np.float64)
        release_mapped(units)  # the pages just read: a memory-mapped layer is never held whole
        return block

    means = sum(block_of(b).sum(axis=1) for b in blocks) / n_units
    norms = np.zeros(n_images)
    for b in blocks:
        block = block_of(b)
        block -= means[:, None]  # in place: one float64 block held, not three
        block *= block
        norms += block.sum(axis=1)
        del block  # before the next block is read: one at a time
    norms = np.sqrt(norms)
    if (norms == 0).any():
        raise ValueError(f"planted layer: {int((norms == 0).sum())} images have a constant pattern over its units")
    gram = np.zeros((n_images, n_images))
    for b in blocks:
        block = block_of(b)
        block -= means[:, None]
        block /= norms[:, None]
        gram += block @ block.T
        del block
    k = min(n_components, n_images - 1)
    # the k largest eigenpairs only (O(n^2 k) for thousands of images, not a full O(n^3) decomposition)
    values, vectors = scipy.linalg.eigh(gram, subset_by_index=[n_images - k, n_images - 1])
    top = np.argsort(values)[::-1]
    vectors = vectors[:, top]
    # an eigenvector's sign is LAPACK's choice: fix it (largest entry positive) so a seed gives one subject
    vectors *= np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(k)])
    return vectors * np.sqrt(np.clip(values[top], 0, None))


def _general_subject(config, cache, step, responses, selection, averaged, activations, shared, selection_key, label,
                     index, disks=None) -> dict:
    """The general design's per-subject steps: RDM comparisons, searchlight maps, cross-validated encoding."""
    frames = {}
    network_keys = [network["key"] for network in shared["networks"]]
    if config["searchlight"]["enabled"] and disks is not None:
        # the selection key hashes the subject's responses (the searchlight reads every vertex)
        key = cache.key("general_searchlight", selection_key, config.section_json("rsa", "design"),
                        config["selection"]["radius_mm"], config["selection"]["method"], network_keys,
                        shared["stimuli_key"])
        frames["general_searchlight"] = step(
            "searchlight", key, lambda: general.general_searchlight(responses, averaged(), disks, shared["networks"],
                                                                    activations, config),
            lambda table, folder: write_table(folder / "searchlight.csv", table),
            lambda folder: read_table(folder / "searchlight.csv"))
    if config["rsa"]["enabled"]:
        key = cache.key("general_rsa", selection_key, config.section_json("rsa", "design"), network_keys,
                        shared["stimuli_key"], config.seed)
        frames.update(step("general_rsa", key, lambda: general.general_rsa(
            averaged(), selection, shared["networks"], activations, label, config, _seed(config.seed, label, "rsa"),
            responses=responses),
            _save_frames, _load_frames))
    if config["encoding"]["enabled"]:
        parts = []
        several = len(shared["networks"]) > 1
        for network in shared["networks"]:
            key = cache.key("general_encoding", selection_key, network["key"], network["layers"],
                            config.section_json("encoding", "best_layer"), config.seed)

            def fitted(network=network):  # the same cached fits and folds as the synthesis step's
                heldout = _heldout_layers(config, network, shared, index)
                return step("encoding_models", _models_key(cache, selection_key, network, config, heldout, None),
                            lambda: steps.encoding_models(responses, selection, activations[network["label"]],
                                                          network["layers"], config, heldout, train_kind=None),
                            _save_models, _load_models, network=network["label"] if several else None)

            frame = step("encoding", key, lambda network=network, fitted=fitted: general.general_encoding(
                fitted(), responses, activations[network["label"]], config, _seed(config.seed, label, "encoding")),
                lambda table, folder: write_table(folder / "encoding.csv", table),
                lambda folder: read_table(folder / "encoding.csv"),
                network=network["label"] if several else None)
            parts.append(_with_network(frame, network["label"]))
        frames["general_encoding"] = pd.concat(parts, ignore_index=True)
    return frames


def _table_digest(table: pd.DataFrame) -> str:
    """A hash of a table's columns and values (as its CSV)."""
    import hashlib

    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


def _selection_json(config) -> str:
    """What a vertex selection depends on (Fig. S2's size is not: adding it recomputes nothing else)."""
    selection = {k: v for k, v in config["selection"].items() if k != "n_per_hemi_s2"}
    return json.dumps({"selection": selection, "rois": config["rois"]}, sort_keys=True, default=str)


def _supplementary_selection_rsa(config, cache, step, responses, disks, averaged, responses_key, shared, label,
                                 index) -> dict:
    """Fig. S2: the ROI RSA again with ``[selection] n_per_hemi_s2`` vertices per hemisphere."""
    wider = copy.deepcopy(config)
    wider["selection"]["n_per_hemi"] = config["selection"]["n_per_hemi_s2"]
    key = cache.key("selection", responses_key, _selection_json(wider), config["rsa"]["metric"],
                    config["rsa"]["method"], "s2")
    # the paper's 200 per hemisphere can exceed a small atlas ROI: S2 then reads all of it (warned; the
    # table's n_vertices and the caption say so) instead of stopping the study
    selection = step("selection", key, lambda: steps.selection_tables(responses, disks, wider, too_few="all"),
                     lambda table, folder: write_table(folder / "selection.csv", table),
                     lambda folder: read_table(folder / "selection.csv"))
    rsa_key = cache.key("brain_rsa", key, config.section_json("rsa"), shared["stimuli_key"], config.seed)
    result = step("brain_rsa", rsa_key, lambda: steps.brain_rsa(averaged(), selection, label, wider,
                                                                 _seed(config.seed, label, "rsa")),
                  _save_frames, _load_frames)
    return {f"{name}_s2": frame for name, frame in result.items()}


def content_digest(path, memo: dict | None = None) -> str:
    """A hash of what a file or folder holds (not of its name), for the cache keys.

    A file: its bytes. A folder: the relative paths and bytes of every file under it. A CSV
    manifest: its bytes and those of the files its ``file`` (or ``path``) column lists. Each
    file's hash is remembered while its size and modification time stay the same.
    """
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file, memo)}\0".encode())
        return digest.hexdigest()
    digest.update(file_sha256(path, memo).encode())
    if path.suffix.lower() == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        column = "file" if "file" in header else "path" if "path" in header else None
        if column is not None:
            for value in pd.read_csv(path, usecols=[column], dtype=str, keep_default_na=False)[column]:
                listed = Path(value) if Path(value).is_absolute() else path.parent / value
                digest.update(f"{value}\0{file_sha256(listed, memo) if listed.is_file() else 'missing'}\0".encode())
    return digest.hexdigest()


def _inputs_digest(config: StudyConfig, network: dict | None = None, memo: dict | None = None) -> dict:
    """Hashes of the contents of the stimulus source and of a network's weights file."""
    found = {}
    source = config["stimuli"]["source"]
    if network is None and source != "samples":
        found["source"] = content_digest(source, memo)
    if network is not None and network["weights"] not in ("imagenet", "random", "") and Path(network["weights"]).is_file():
        found["weights"] = content_digest(network["weights"], memo)
    if network is not None and ":" in str(network["name"]):
        found["code"] = _module_digest(str(network["name"]).split(":")[0], memo)
    return found


def _module_digest(module: str, memo: dict | None = None) -> str | None:
    """A hash of the source of a custom network's module (``"package.module:function"``): editing
    the code (a ReLU made a Tanh) changes every step that the network's outputs feed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None  # load_model says what is wrong with the name
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return content_digest(spec.origin, memo)


def _file_digests(entry: Mapping) -> dict:
    """The content hash of every file a ``[[subject]]`` names (in lists, hemisphere tables, globs
    and GLMsingle folders too), so that a changed file invalidates its cached steps."""
    import glob

    stamps: dict = {}

    def visit(value):
        if isinstance(value, Mapping):
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)
        elif isinstance(value, str) and value:
            paths = sorted(glob.glob(value)) if any(c in value for c in "*?[") else [value]
            for path in map(Path, paths):
                if path.is_file() or path.is_dir():
                    stamps[str(path)] = content_digest(path)

    visit(dict(entry))
    return stamps


def _save_stimuli(value, folder: Path) -> None:
    stimuli, table = value
    save_stimuli(stimuli, folder / "stimuli")
    write_table(folder / "described.csv", table)


def _load_stimuli(folder: Path):
    # mapped: 10,000 images of 224 pixels are 6 GB, read by the activations step and Fig. 1 only
    return load_stimuli(folder / "stimuli", mmap=True), read_table(folder / "described.csv")


def _save_activations(activations: Activations, folder: Path) -> None:
    """One ``.npz``, unless the activations were streamed into the step's folder already."""
    if activations.folder is None:
        activations.save(folder / "activations.npz")


def _load_activations(folder: Path) -> Activations:
    """The streamed layers as read-only memory maps, or the ``.npz`` in memory (also what caches
    written before activations were streamed hold)."""
    if (folder / ACTIVATIONS_FOLDER).is_dir():
        return Activations.load(folder / ACTIVATIONS_FOLDER)
    return Activations.load(folder / "activations.npz")


def _save_responses(responses: Responses, folder: Path) -> None:
    responses.save(folder / "responses.npz")


def _load_responses(folder: Path) -> Responses:
    return Responses.load(folder / "responses.npz")


def _save_models(models: EncodingModels, folder: Path) -> None:
    models.save(folder / "models.npz")


def _load_models(folder: Path) -> EncodingModels:
    return EncodingModels.load(folder / "models.npz")
