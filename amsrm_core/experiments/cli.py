"""``amsrm experiment {compare,seqlen,ablation}``: the paper's experiments, resumable.

Wired into amsrm.cli by ``experiments.cli.register(sub)`` and
``**experiments.cli.COMMANDS``.  The full runs, one process per data set (each on
one core; Beauty dominates the cost, so its runs are capped at 20 minutes each):

    amsrm experiment compare  --datasets ml-100k --seeds 0 1 2 --tune --threads 1
    amsrm experiment compare  --datasets beauty  --seeds 0 1 2 --tune --threads 1 --time-budget-s 1200
    amsrm experiment seqlen   --datasets ml-100k --seeds 0 1 2 --threads 1
    amsrm experiment seqlen   --datasets beauty  --seeds 0 1 2 --threads 1 --time-budget-s 1200
    amsrm experiment ablation --datasets ml-100k --seeds 0 1 2 --threads 1
    amsrm experiment ablation --datasets beauty  --seeds 0 1 2 --threads 1 --time-budget-s 1200

Processes on different data sets write different files and may run side by side.
Two processes on one data set (e.g. split by ``--models``) may race on its results
file: afterwards run the command once more with every model; it trains nothing and
rewrites the tables and figures from the run store.  ``--time-budget-s`` and every
other setting that changes results is part of a run's key, so keep them fixed
between a run and its resume.

A tiny smoke run on synthetic data, into a scratch folder:

    amsrm experiment compare --datasets synthetic --seeds 0 --epochs 2 \\
        --synthetic n_users=120 --synthetic n_items=200 --set d_model=16 \\
        --runs-dir /tmp/amsrm-runs --out-dir /tmp/amsrm-docs

Every finished run is kept under ``--runs-dir`` (``store.py``); rerunning a command
skips it and only rebuilds tables and figures.  ``--dry-run`` prints the plan.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from amsrm_core.data.synthetic import SyntheticConfig
from amsrm_core.experiments import ablation, compare, seqlen
from amsrm_core.experiments.common import Options, Outcome, check_model_set
from amsrm_core.models import MODELS
from amsrm_core.runner import parse_overrides
from amsrm_core.splits import SPLITS
from amsrm_core.training.trainer import TrainConfig, config_choices, config_doc

_DEFAULTS = Options(datasets=[], seeds=[])


def _common(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"],
                        help="data sets to run on, each into its own results file (default: ml-100k beauty)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="seeds of every run (default: 0 1 2)")
    parser.add_argument("--data", type=Path, help="data root holding one folder per data set "
                        "(default: $AMSRM_DATA, else ./data)")
    parser.add_argument("--protocol", default="loo", choices=sorted(SPLITS),
                        help="leave-one-out by time, or a global temporal split")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="model_set",
                        help="model config override, for every model whose config has KEY: --set d_model=128")
    parser.add_argument("--synthetic", action="append", default=[], metavar="KEY=VALUE",
                        help="SyntheticConfig override for --datasets synthetic: --synthetic n_users=120")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--precision", default=defaults.precision, choices=config_choices("precision"),
                        help=config_doc("precision"))
    parser.add_argument("--time-budget-s", type=float, default=defaults.time_budget_s,
                        help="per run: stop training after this much time (0 = no limit)")
    parser.add_argument("--budget-clock", default=defaults.budget_clock,
                        choices=config_choices("budget_clock"),
                        help="what --time-budget-s counts: wall time, or the run's CPU time (fair on a "
                        "shared machine)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=config_doc("epochs"))
    parser.add_argument("--patience", type=int, default=defaults.patience, help=config_doc("patience"))
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=config_doc("batch_size"))
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="learning rate of every run (compare --tune picks its own from the grid)")
    parser.add_argument("--bucket-by-length", action="store_true",
                        help="batch training windows of similar length together (faster on short histories)")
    parser.add_argument("--device", default=defaults.device, help=config_doc("device"))
    parser.add_argument("--runs-dir", type=Path, default=_DEFAULTS.runs_dir,
                        help="finished runs, for resuming (default: ./runs/experiments)")
    parser.add_argument("--out-dir", type=Path, default=_DEFAULTS.out_dir,
                        help="results/ and figures/ are written below it (default: ./docs, so run from the "
                        "repository to update its docs)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, one process each "
                        "(a GPU or many cores; keep --threads × --jobs ≤ cores)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, what is done; train nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``amsrm experiment …`` to the ``amsrm`` parser."""
    parser = sub.add_parser("experiment", help="the paper's experiments: compare, seqlen, ablation")
    kinds = parser.add_subparsers(dest="experiment", required=True)

    cmp = kinds.add_parser("compare", help="every model, P/R/NDCG at K = 5, 10, 15, 20 (figures 2-4)")
    _common(cmp)
    cmp.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                     help="models to compare (default: all)")
    cmp.add_argument("--tune", action="store_true", help="pick each model's config from its grid (grids.py) "
                     "on validation NDCG@10 first")
    cmp.add_argument("--tune-seeds", type=int, nargs="+", help="seeds of the grid runs (default: first seed)")

    sl = kinds.add_parser("seqlen", help="AMSRM and SASRec-CE at window n = 20, 30, 50, 100 (figure 5)")
    _common(sl)
    sl.add_argument("--models", nargs="+", default=list(seqlen.MODELS), choices=list(MODELS),
                    help=f"models to run at each length (default: {' '.join(seqlen.MODELS)})")
    sl.add_argument("--lengths", type=int, nargs="+", default=list(seqlen.LENGTHS),
                    help=f"window lengths n (default: {' '.join(map(str, seqlen.LENGTHS))})")

    abl = kinds.add_parser("ablation", help="AMSRM side-information groups, fusions, field importance")
    _common(abl)
    variants = list(ablation.VARIANTS)
    abl.add_argument("--variants", nargs="+", default=variants, choices=variants,
                     help="ablation variants to run (default: all)")


def options_from(args: argparse.Namespace) -> Options:
    train = TrainConfig(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                        bucket_by_length=args.bucket_by_length, budget_clock=args.budget_clock,
                        threads=args.threads, precision=args.precision, time_budget_s=args.time_budget_s,
                        device=args.device, progress=not args.no_progress)
    return Options(datasets=args.datasets, seeds=args.seeds, train=train, model_set=args.model_set,
                   synthetic=args.synthetic, data_root=args.data, protocol=args.protocol,
                   runs_dir=args.runs_dir, out_dir=args.out_dir, dry_run=args.dry_run,
                   progress=not args.no_progress, jobs=args.jobs)


def cmd_experiment(args: argparse.Namespace) -> None:
    options = options_from(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = ["amsrm"] if args.experiment == "ablation" else args.models
    check_model_set(options.model_set, models)  # before any data set loads: a typo fails at once
    parse_overrides(SyntheticConfig, options.synthetic)
    run: dict[str, Callable[[], Outcome]] = {
        "compare": lambda: compare.run_compare(options, args.models, args.tune, args.tune_seeds),
        "seqlen": lambda: seqlen.run_seqlen(options, args.models, args.lengths),
        "ablation": lambda: ablation.run_ablation(options, args.variants),
    }
    outcome = run[args.experiment]()
    verb = "planned" if options.dry_run else "ran"
    print(f"{args.experiment}: {verb} {outcome.planned} runs; trained {outcome.trained}, "
          f"reused {outcome.reused} finished")
    for path in outcome.outputs:
        print(f"wrote {path}")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {"experiment": cmd_experiment}
