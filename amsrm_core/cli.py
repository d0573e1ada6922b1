"""The offline subcommands of ``amsrm``: data, train, evaluate, results.

Wired into the command line by amsrm.cli (``register(sub)``, ``COMMANDS``), like every
other package's subcommands.

    amsrm data stats --dataset ml-100k
    amsrm train --dataset synthetic                                  # quick demo run
    amsrm train --dataset ml-100k --seeds 0 1 2 --threads 1 \\
        --results docs/results/ml-100k.json                         # the documented results
    amsrm train --dataset beauty --set d_model=64 --checkpoint runs/beauty
    amsrm evaluate --checkpoint runs/beauty --dataset beauty
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import get_type_hints

import orjson

from amsrm.errors import ConfigError
from amsrm_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from amsrm_core.data import DATASETS, load_dataset
from amsrm_core.evaluate import evaluate
from amsrm_core.models import MODELS
from amsrm_core.report import k_table, results_table
from amsrm_core.results import git_commit, merge_results, write_results
from amsrm_core.runner import Experiment, make_split, parse_overrides, run_seed
from amsrm_core.training.trainer import TrainConfig, resolve_device

SHOWN = ("precision@10", "recall@10", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@10")


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--data", help="data path (default: $AMSRM_DATA or ../shared/data/<folder>)")
    parser.add_argument("--protocol", default="loo", choices=["loo", "temporal"],
                        help="leave-one-out by time, or a global temporal split")


def _train_args(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the dataclass, so the two cannot drift."""
    defaults, hints = TrainConfig(), get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("seed", "progress"):
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        if hints[f.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=hints[f.name], default=default)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the offline subcommands to the ``amsrm`` parser."""
    data = sub.add_parser("data", help="inspect a data set")
    data.add_argument("action", choices=["stats"])
    _data_args(data)

    train = sub.add_parser("train", help="train and evaluate a model (one or more seeds)")
    _data_args(train)
    train.add_argument("--model", default="amsrm", choices=sorted(MODELS))
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="model config override, e.g. --set d_model=128 --set use_user_fields=false")
    train.add_argument("--seeds", type=int, nargs="+", default=[0])
    train.add_argument("--name", help="key of this model in the results file (default: --model)")
    train.add_argument("--checkpoint", type=Path, help="save the model here (seed-suffixed if several)")
    train.add_argument("--results", type=Path, help="merge the multi-seed summary into this JSON file")
    train.add_argument("--no-progress", action="store_true")
    _train_args(train)

    ev = sub.add_parser("evaluate", help="evaluate a saved checkpoint on a data set's split")
    _data_args(ev)
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--mask-history", action=argparse.BooleanOptionalAction, default=True)

    results = sub.add_parser("results", help="combine results files written by parallel seed runs")
    results.add_argument("action", choices=["merge", "table"], help="merge files, or print a markdown table")
    results.add_argument("inputs", nargs="+", type=Path)
    results.add_argument("--out", type=Path, help="merged file (merge)")
    results.add_argument("--model", help="table: every metric at every K for this model instead")


def _print_metrics(label: str, metrics: dict[str, float]) -> None:
    print(f"{label:>12}  " + "  ".join(f"{k}={metrics[k]:.4f}" for k in SHOWN))


def cmd_train(args: argparse.Namespace) -> None:
    commit = git_commit()  # the code that runs, not whatever HEAD is when training ends
    data = load_dataset(args.dataset, args.data)
    split = make_split(data, args.protocol)
    print(f"{data.name}: {data.n_users} users, {data.n_items} items, {data.n_events} events; "
          f"split {split.describe()}")
    train_config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                                  if f.name not in ("seed", "progress")}, progress=not args.no_progress)
    experiment = Experiment(args.model, parse_overrides(MODELS[args.model][1], args.set), train_config)
    runs = []
    for seed in args.seeds:
        run = run_seed(experiment.model_name, split, experiment.overrides, train_config, seed)
        runs.append(run)
        print(f"seed {seed}: best epoch {run.train.best_epoch}/{run.train.epochs_run}, "
              f"{run.train.seconds_to_best:.1f}s to best, {run.wall_seconds:.1f}s in all")
        _print_metrics("valid", run.valid)
        _print_metrics("test", run.test)
        if args.checkpoint:
            target = args.checkpoint if len(args.seeds) == 1 else args.checkpoint / f"seed-{seed}"
            save_checkpoint(target, run.model, data, {"valid": run.valid, "test": run.test},
                            extra={"dataset": data.name, "protocol": args.protocol, "seed": seed})
            print(f"saved {target}")
    summary = experiment.summary(runs)
    if len(runs) > 1:
        print("mean ± std over seeds (test):")
        for k in SHOWN:
            print(f"  {k:>13} {summary['metrics'][k]['mean']:.4f} ± {summary['metrics'][k]['std']:.4f}")
    if args.results:
        write_results(args.results, data.name, f"{args.protocol}-full", split.describe(),
                      args.name or args.model, summary, provenance={"commit": commit})
        print(f"wrote {args.results}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    loaded = load_checkpoint(args.checkpoint, resolve_device(args.device))
    data = load_dataset(args.dataset, args.data)
    if loaded.vocabularies["item"].tokens != data.item_vocab.tokens:
        raise CheckpointError(f"{args.checkpoint} was trained on other item ids than {data.name}: "
                              "indices would not match")
    split = make_split(data, args.protocol)
    max_len = loaded.model.config.max_len
    options = dict(mask_history=args.mask_history, device=resolve_device(args.device))
    for part in ("valid", "test"):
        _print_metrics(part, evaluate(loaded.model, split, part, max_len, **options))


def cmd_data(args: argparse.Namespace) -> None:
    data = load_dataset(args.dataset, args.data)
    print(orjson.dumps(data.summary(), option=orjson.OPT_INDENT_2).decode())


def cmd_results(args: argparse.Namespace) -> None:
    if args.action == "table":
        for path in args.inputs:
            print((k_table(path, args.model) if args.model else results_table(path)) + "\n")
        return
    if args.out is None:
        raise ConfigError("results merge needs --out")
    document = merge_results(args.inputs, args.out)
    for key, entry in document["models"].items():
        ndcg = entry["metrics"]["ndcg@10"]
        print(f"{key}: seeds {entry['seeds']} ndcg@10 {ndcg['mean']:.4f} ± {ndcg['std']:.4f}")
    print(f"wrote {args.out}")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": cmd_train, "evaluate": cmd_evaluate, "data": cmd_data, "results": cmd_results,
}
