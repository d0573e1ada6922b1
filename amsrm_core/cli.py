"""The offline subcommands of ``amsrm``: data, train, evaluate, results.

Wired into the command line by amsrm.cli (``register(sub)``, ``COMMANDS``), like every
other package's subcommands.

    amsrm data stats --dataset ml-100k
    amsrm train --dataset synthetic                                  # quick demo run
    amsrm train --dataset ml-100k --seeds 0 1 2 --threads 1 \\
        --results docs/results/ml-100k.json                         # the documented results
    amsrm train --dataset beauty --set d_model=64 --checkpoint runs/beauty
    amsrm evaluate --checkpoint runs/beauty              # data set and protocol from its manifest
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import get_type_hints

import orjson

from amsrm.errors import ConfigError
from amsrm_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, trained_on
from amsrm_core.data import DATASETS, canonical_name, load_dataset
from amsrm_core.evaluate import evaluate
from amsrm_core.models import MODELS
from amsrm_core.report import curve_table, k_table, results_table, training_curves
from amsrm_core.results import git_commit, merge_results, write_results
from amsrm_core.runner import Experiment, make_split, parse_overrides, run_seed
from amsrm_core.schema import FieldOptions, InteractionData
from amsrm_core.splits import SPLITS
from amsrm_core.training.trainer import TrainConfig, config_choices, config_doc, resolve_device

SHOWN = ("precision@10", "recall@10", "ndcg@5", "ndcg@10", "ndcg@20", "mrr@10")


def _data_args(parser: argparse.ArgumentParser, from_checkpoint: bool = False) -> None:
    """``from_checkpoint``: no defaults for --dataset and --protocol, the checkpoint's manifest has them."""
    parser.add_argument("--dataset", default=None if from_checkpoint else "synthetic",
                        help=f"one of {', '.join(DATASETS)}"
                        + (" (default: the one the checkpoint was trained on)" if from_checkpoint else ""))
    parser.add_argument("--data", help="data path (default: $AMSRM_DATA/<folder>, else ./data/<folder>)")
    parser.add_argument("--name", help="s3rec: which <Name>.txt of a folder with several (e.g. Sports); "
                        "generic: what to call the data set")
    defaults = FieldOptions()
    parser.add_argument("--field-max-width", type=int, default=defaults.max_width,
                        help="most values of a multi-valued side field per item or user, the most frequent "
                        "kept; repeats count once (default: %(default)s)")
    parser.add_argument("--field-min-count", type=int, default=defaults.min_count,
                        help="drop side-field values found on fewer items or users (default: %(default)s)")
    parser.add_argument("--protocol", default=None if from_checkpoint else "loo", choices=sorted(SPLITS),
                        help="leave-one-out by time, or a global temporal split"
                        + (" (default: the checkpoint's)" if from_checkpoint else ""))


def _train_args(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed, documented and restricted from the dataclass (one source)."""
    defaults, hints = TrainConfig(), get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("seed", "progress"):
            continue
        flag, default = "--" + f.name.replace("_", "-"), getattr(defaults, f.name)
        if hints[f.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                                help=config_doc(f.name))
        else:
            parser.add_argument(flag, type=hints[f.name], default=default, choices=config_choices(f.name),
                                help=config_doc(f.name) + " (default: %(default)s)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the offline subcommands to the ``amsrm`` parser."""
    data = sub.add_parser("data", help="inspect a data set")
    data.add_argument("action", choices=["stats"], help="stats: sizes, side fields and the load report")
    _data_args(data)

    train = sub.add_parser("train", help="train and evaluate a model (one or more seeds)")
    _data_args(train)
    train.add_argument("--model", default="amsrm", choices=sorted(MODELS), help="architecture to train")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="model config override, e.g. --set d_model=128 --set use_user_fields=false")
    train.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    train.add_argument("--key", help="key of this model in the results file (default: --model)")
    train.add_argument("--checkpoint", type=Path, help="save the model here (seed-suffixed if several)")
    train.add_argument("--results", type=Path, help="merge the multi-seed summary into this JSON file")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    _train_args(train)

    ev = sub.add_parser("evaluate", help="evaluate a saved checkpoint on a data set's split")
    _data_args(ev, from_checkpoint=True)
    ev.add_argument("--checkpoint", type=Path, required=True, help="folder written by train --checkpoint")
    ev.add_argument("--device", default="auto", help=config_doc("device"))
    ev.add_argument("--mask-history", action=argparse.BooleanOptionalAction, default=True,
                    help=config_doc("mask_history"))

    results = sub.add_parser("results", help="combine, tabulate or plot results files")
    results.add_argument("action", choices=["merge", "table", "curve"],
                         help="merge files, print a markdown table, or plot each run's per-epoch training "
                         "loss and validation metric (curve: results files or checkpoints)")
    results.add_argument("inputs", nargs="+", type=Path, help="results files (train --results); curve also "
                         "takes checkpoint folders")
    results.add_argument("--out", type=Path, help="merged file (merge); the PNG (curve; default: the first "
                         "input with .curve.png; without matplotlib a table is printed instead)")
    results.add_argument("--metric", default="ndcg@10",
                         help="curve: the validation metric (default: %(default)s)")
    results.add_argument("--model", help="table: every metric at every K for this model instead")


def load_data(args: argparse.Namespace, dataset: str | None = None) -> InteractionData:
    """The data set the ``_data_args`` flags name (``dataset`` for one read from a checkpoint)."""
    fields = FieldOptions(args.field_max_width, args.field_min_count)
    return load_dataset(dataset or args.dataset, args.data, fields=fields, name=args.name)


def _print_metrics(label: str, metrics: dict[str, float]) -> None:
    print(f"{label:>12}  " + "  ".join(f"{k}={metrics[k]:.4f}" for k in SHOWN))


def cmd_train(args: argparse.Namespace) -> None:
    commit = git_commit()  # the code that runs, not whatever HEAD is when training ends
    train_config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                                  if f.name not in ("seed", "progress")}, progress=not args.no_progress)
    # flags and overrides first: a typo fails at once, not after the data set has loaded
    experiment = Experiment(args.model, parse_overrides(MODELS[args.model][1], args.set), train_config)
    data = load_data(args)
    split = make_split(data, args.protocol)
    print(f"{data.name}: {data.n_users} users, {data.n_items} items, {data.n_events} events; "
          f"split {split.describe()}")
    runs = []
    for seed in args.seeds:
        run = run_seed(experiment.model_name, split, experiment.overrides, train_config, seed)
        runs.append(run)
        print(f"seed {seed}: best epoch {run.train.best_epoch}/{run.train.epochs_run} "
              f"(stopped: {run.train.stop_reason}), "
              f"{run.train.seconds_to_best:.1f}s to best, {run.wall_seconds:.1f}s in all")
        _print_metrics("valid", run.valid)
        _print_metrics("test", run.test)
        if args.checkpoint:
            target = args.checkpoint if len(args.seeds) == 1 else args.checkpoint / f"seed-{seed}"
            save_checkpoint(target, run.model, data, {"valid": run.valid, "test": run.test},
                            extra={"seed": seed}, dataset=canonical_name(args.dataset),
                            protocol=args.protocol, train_config=dataclasses.replace(train_config, seed=seed),
                            training=run.train.record())
            print(f"saved {target}")
    summary = experiment.summary(runs)
    if len(runs) > 1:
        print("mean ± std over seeds (test):")
        for k in SHOWN:
            print(f"  {k:>13} {summary['metrics'][k]['mean']:.4f} ± {summary['metrics'][k]['std']:.4f}")
    if args.results:
        write_results(args.results, data.name, f"{args.protocol}-full", split.describe(),
                      args.key or args.model, summary, provenance={"commit": commit})
        print(f"wrote {args.results}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    loaded = load_checkpoint(args.checkpoint, resolve_device(args.device))
    dataset, protocol = trained_on(loaded.manifest, args.checkpoint, args.dataset, args.protocol)
    data = load_data(args, dataset)
    if loaded.vocabularies["item"].tokens != data.item_vocab.tokens:
        raise CheckpointError(f"{args.checkpoint} was trained on other item ids than {data.name}: "
                              "indices would not match")
    print(f"{data.name}, protocol {protocol}")
    split = make_split(data, protocol)
    max_len = loaded.model.config.max_len
    options = dict(mask_history=args.mask_history, device=resolve_device(args.device))
    for part in ("valid", "test"):
        _print_metrics(part, evaluate(loaded.model, split, part, max_len, **options))


def cmd_data(args: argparse.Namespace) -> None:
    data = load_data(args)
    print(orjson.dumps(data.summary(), option=orjson.OPT_INDENT_2).decode())


def cmd_curve(args: argparse.Namespace) -> None:
    curves = {name: curve for path in args.inputs for name, curve in training_curves(path).items()}
    if not curves:
        raise ConfigError(f"no per-epoch records in {[str(p) for p in args.inputs]} (written before they "
                          "were kept, or by a model that does not train)")
    print(curve_table(curves, args.metric))
    try:
        from amsrm_core.experiments.plots import curves as plot_curves

        out = args.out or args.inputs[0].with_suffix(".curve.png")
        panels = {"training loss": {n: [(p["epoch"], p["loss"]) for p in c] for n, c in curves.items()},
                  f"validation {args.metric}": {n: [(p["epoch"], p["valid"][args.metric]) for p in c
                                                    if args.metric in p["valid"]] for n, c in curves.items()}}
        print(f"wrote {plot_curves(panels, out, ', '.join(map(str, args.inputs)), 'epoch')}")
    except ConfigError as e:  # no matplotlib: the table above is the answer
        print(e)


def cmd_results(args: argparse.Namespace) -> None:
    if args.action == "curve":
        cmd_curve(args)
        return
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
