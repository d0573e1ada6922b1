"""What the experiments share: options, data, the runs of one data set, summaries, tables.

An experiment is a list of :class:`Job` (model, config overrides, train settings,
seed) per data set.  :class:`DatasetRuns` turns each job into a spec, trains it
through :func:`amsrm_core.runner.run_seed` unless the run store already holds it,
and hands back the stored records; tables and figures are always rebuilt from
those records, so a rerun only recomputes them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import types
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from tqdm.auto import tqdm

from amsrm.errors import ConfigError
from amsrm_core.data import ALIASES, DATA_FOLDERS, load_dataset
from amsrm_core.data.synthetic import SyntheticConfig
from amsrm_core.experiments.store import RunStore, run_key
from amsrm_core.models import MODELS, Recommender
from amsrm_core.results import aggregate
from amsrm_core.runner import Experiment, SeedRun, make_split, parse_overrides, run_seed
from amsrm_core.schema import InteractionData
from amsrm_core.splits import Split
from amsrm_core.training.trainer import SELECTION_METRIC, TrainConfig, TrainResult

# TrainConfig fields that do not change results: left out of the run key
_NOT_IN_KEY = ("seed", "progress", "threads", "device", "eval_batch_size")
# fields added after runs were stored, with the value that behaves as before: in the key only when
# set to something else, so the stored runs keep their keys
_IN_KEY_UNLESS = {"bucket_by_length": False, "budget_clock": "wall"}


@dataclass
class Options:
    datasets: list[str]
    seeds: list[int]
    train: TrainConfig = field(default_factory=TrainConfig)
    model_set: list[str] = field(default_factory=list)  # KEY=VALUE, applied to every model config with KEY
    synthetic: list[str] = field(default_factory=list)  # KEY=VALUE for SyntheticConfig (tests, smoke runs)
    data_root: Path | None = None  # holds <folder> per data set; default $AMSRM_DATA, else ./data
    protocol: str = "loo"
    # relative to the working directory (run from the repository to update its docs/), never to this file
    runs_dir: Path = Path("runs") / "experiments"
    out_dir: Path = Path("docs")  # results/ and figures/ go below it
    dry_run: bool = False  # print the plan (and what is already finished), train nothing
    progress: bool = True
    jobs: int = 1  # runs trained at once, each in its own process (a GPU or many cores); 1 = in this process


@dataclass
class Outcome:
    """What a command did: runs trained and reused, files written."""

    trained: int = 0
    reused: int = 0
    planned: int = 0
    outputs: list[Path] = field(default_factory=list)


@dataclass
class Job:
    label: str  # key in the results file: model name, "amsrm n=20", ablation variant
    model: str  # registry name
    overrides: dict[str, Any]  # model config overrides, complete (the --set values included)
    train: TrainConfig
    seed: int


def load_split(name: str, options: Options) -> tuple[InteractionData, Split]:
    if name == "synthetic":
        data = load_dataset("synthetic", **parse_overrides(SyntheticConfig, options.synthetic))
    else:
        folder, root = DATA_FOLDERS.get(ALIASES.get(name, name)), options.data_root
        data = load_dataset(name, None if root is None else root / folder if folder else root)
    return data, make_split(data, options.protocol)


def model_overrides(model: str, pairs: list[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``--set`` pairs that ``model``'s config has (others are for other models), then ``extra``."""
    names = {f.name for f in dataclasses.fields(MODELS[model][1])}
    overrides = parse_overrides(MODELS[model][1], [p for p in pairs if p.partition("=")[0] in names])
    return {**overrides, **(extra or {})}


def check_model_set(pairs: list[str], models: Iterable[str]) -> None:
    """Every ``--set`` key must belong to at least one model of the experiment, and its value must
    have that field's type in every model that has it (typos fail loudly, before any data loads)."""
    configs = {MODELS[m][1] for m in models}
    known = {f.name for c in configs for f in dataclasses.fields(c)}
    for pair in pairs:
        key = pair.partition("=")[0]
        if key not in known:
            raise ConfigError(f"--set {pair!r}: no model of this experiment has that field; "
                             f"known: {', '.join(sorted(known))}")
        for config_cls in configs:
            if key in {f.name for f in dataclasses.fields(config_cls)}:
                parse_overrides(config_cls, [pair])


class DatasetRuns:
    """The runs of one experiment on one data set, through the run store."""

    def __init__(self, experiment: str, dataset: str, options: Options, store: RunStore,
                 outcome: Outcome) -> None:
        self.experiment, self.options, self.store, self.outcome = experiment, options, store, outcome
        self.dataset = dataset  # as asked for (worker processes load it again by this name)
        self.data, self.split = load_split(dataset, options)
        self.name = self.data.name
        self.identity = {"experiment": experiment, "dataset": self.name, "protocol": options.protocol,
                         "split": self.split.describe(), "events": self.data.n_events,
                         "item_vocab": len(self.data.item_vocab)}

    def train_config(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self.options.train, progress=self.options.progress, **changes)

    def spec(self, job: Job) -> dict:
        config = MODELS[job.model][1](**job.overrides)
        train = {k: v for k, v in dataclasses.asdict(job.train).items()
                 if k not in _NOT_IN_KEY and (k not in _IN_KEY_UNLESS or v != _IN_KEY_UNLESS[k])}
        return {**self.identity, "model": job.model, "config": dataclasses.asdict(config), "train": train,
                "seed": job.seed}

    def run(self, jobs: list[Job], desc: str, extra: Callable[[SeedRun, Split], dict] | None = None,
            ) -> list[dict] | None:
        """Records of ``jobs`` in order, training the missing ones; None on a dry run with some missing.

        ``extra(run, split)`` adds model-dependent numbers (e.g. field importance) to a new record while
        the trained model is still in memory.
        """
        self.outcome.planned += len(jobs)
        if self.options.dry_run:
            return self._plan(jobs, desc)
        specs = [self.spec(job) for job in jobs]
        records = [self.store.get(spec) for spec in specs]
        self.outcome.reused += sum(r is not None for r in records)
        missing = [i for i, r in enumerate(records) if r is None]
        bar = tqdm(total=len(missing), desc=f"{self.experiment} {self.name} {desc}", unit="run",
                   disable=not self.options.progress or not missing)
        for i, record in self._train(jobs, missing, extra):
            records[i] = self.store.put(specs[i], record)
            self.outcome.trained += 1
            bar.set_postfix_str(f"{jobs[i].label} seed {jobs[i].seed} done")
            bar.update()
        bar.close()
        return cast(list[dict], records)  # every missing one was trained above

    def _train(self, jobs: list[Job], missing: list[int], extra: Callable[[SeedRun, Split], dict] | None
               ) -> Iterable[tuple[int, dict]]:
        """(index, record) of each missing job: in this process, or ``options.jobs`` processes at once.

        Worker processes are spawned (no forked torch state), load the split themselves and
        train without per-epoch bars (many bars would interleave); the parent writes the store.
        """
        if self.options.jobs <= 1 or len(missing) <= 1:
            for i in missing:
                yield i, train_record(jobs[i], self.split, extra)
            return
        quiet = [dataclasses.replace(jobs[i], train=dataclasses.replace(jobs[i].train, progress=False))
                 for i in missing]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(self.options.jobs, len(missing)), mp_context=context) as pool:
            futures = {pool.submit(_train_in_worker, self.dataset, self.options, job, extra): i
                       for i, job in zip(missing, quiet, strict=True)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def _plan(self, jobs: list[Job], desc: str) -> list[dict] | None:
        print(f"{self.experiment} {self.name} {desc}: {len(jobs)} runs")
        records = []
        for job in jobs:
            spec = self.spec(job)
            record = self.store.get(spec)
            records.append(record)
            print(f"  [{'done' if record else 'todo'}] {job.label} seed {job.seed} "
                  f"{job.overrides or ''} lr={job.train.lr} key {run_key(spec)}")
        return None if any(r is None for r in records) else cast(list[dict], records)


def train_record(job: Job, split: Split, extra: Callable[[SeedRun, Split], dict] | None = None) -> dict:
    """Train one job and return what the run store keeps of it."""
    run = run_seed(job.model, split, job.overrides, job.train, job.seed)
    return {"label": job.label, "valid": run.valid, "test": run.test,
            "train": {"best_epoch": run.train.best_epoch, "epochs_run": run.train.epochs_run,
                      "train_seconds": run.train.train_seconds, "seconds_to_best": run.train.seconds_to_best},
            "wall_seconds": run.wall_seconds, "extra": extra(run, split) if extra else {},
            "curve": [{"epoch": h["epoch"], "loss": h["loss"], "elapsed_s": h["elapsed_s"],
                       f"valid_{SELECTION_METRIC}": h["valid"][SELECTION_METRIC]} for h in run.train.history]}


_WORKER_SPLITS: dict[str, Split] = {}  # per worker process: each data set is loaded and split once


def _train_in_worker(dataset: str, options: Options, job: Job,
                     extra: Callable[[SeedRun, Split], dict] | None) -> dict:
    if dataset not in _WORKER_SPLITS:
        _WORKER_SPLITS[dataset] = load_split(dataset, options)[1]
    if job.train.threads:
        torch.set_num_threads(job.train.threads)
    return train_record(job, _WORKER_SPLITS[dataset], extra)


def summary_entry(job: Job, records: list[dict]) -> dict:
    """The results-file entry of one model/variant, exactly as ``amsrm train --results`` writes it.

    Rebuilt from stored records (no model in memory), through ``Experiment.summary`` so the
    shape cannot drift from the rest of the project; extra numbers are aggregated alongside.
    """
    config_cls = MODELS[job.model][1]
    # no model in memory: a stand-in with the config, all that Experiment.summary reads of it
    runs = [SeedRun(r["spec"]["seed"],
                    cast(Recommender, types.SimpleNamespace(config=config_cls(**r["spec"]["config"]))),
                    TrainResult(**r["train"]), r["valid"], r["test"], r["wall_seconds"]) for r in records]
    entry = Experiment(job.model, job.overrides, job.train).summary(runs)
    for name in records[0].get("extra") or {}:
        entry[name] = aggregate([r["extra"][name] for r in records])
    return entry


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def mean_std(stat: dict) -> str:
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"
