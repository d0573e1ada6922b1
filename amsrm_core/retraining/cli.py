"""The retraining subcommands of ``amsrm``: retrain, registry (``amsrm collect`` is in streams.cli).

Wired into the command line by amsrm.cli (``register(sub)``, ``COMMANDS``).  Every
command reads StreamSettings from the environment (AMSRM_*, or the TOML file named by
AMSRM_CONFIG); flags override one run.

    amsrm retrain                                   # once (cron, CronJob); prints the report
    amsrm retrain --every 1h                        # scheduler
    amsrm registry list | show v0003 | history
    amsrm registry add runs/stream-model --promote  # bootstrap from an `amsrm train` checkpoint
    amsrm registry promote v0005 | rollback [--to v0002]
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import orjson

from amsrm.logs import configure as configure_logging
from amsrm.settings import StreamSettings
from amsrm_core.registry import ModelRegistry
from amsrm_core.retraining.retrain import REPORTED, RetrainOptions, parse_duration, retrain, run_every
from amsrm_core.retraining.store import TrainingStore

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    re = sub.add_parser("retrain", help="train a candidate on the store; promote it if it passes the gate")
    re.add_argument("--every", help="keep running: one retrain per interval (90s, 30m, 1h, 1d)")
    re.add_argument("--store", help="training store folder (default: AMSRM_STORE_DIR)")
    re.add_argument("--registry", help="registry folder (default: AMSRM_REGISTRY_DIR)")
    re.add_argument("--window-h", type=float, help="hours of samples (AMSRM_RETRAIN_WINDOW_H)")
    re.add_argument("--budget-s", type=float, help="training time budget (AMSRM_RETRAIN_BUDGET_S)")
    re.add_argument("--max-epochs", type=int, help="most epochs (AMSRM_RETRAIN_MAX_EPOCHS)")
    re.add_argument("--margin", type=float, help="promote if candidate >= current - margin")
    re.add_argument("--metric", help="gate metric, e.g. ndcg@10 (AMSRM_GATE_METRIC)")
    re.add_argument("--lr", type=float, default=None,
                    help="Adam learning rate (default: the current version's, else 1e-3)")
    re.add_argument("--model", default=RetrainOptions.model, help="architecture when no version is current")
    re.add_argument("--report", type=Path, help="also write the JSON report here")

    registry = sub.add_parser("registry", help="list, inspect, promote and roll back model versions")
    registry.add_argument("--registry", help="registry folder (default: AMSRM_REGISTRY_DIR)")
    actions = registry.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="versions, their metrics, and which is current")
    actions.add_parser("history", help="promotions, rollbacks and rejected candidates, oldest first")
    show = actions.add_parser("show", help="a version's registry block (window, gate, report)")
    show.add_argument("version", help="version name, e.g. v0003")
    add = actions.add_parser("add", help="import a checkpoint folder (amsrm train) as a version")
    add.add_argument("checkpoint", type=Path, help="checkpoint folder (amsrm train --checkpoint)")
    add.add_argument("--promote", action="store_true", help="and make it current")
    promote = actions.add_parser("promote", help="make a version current (verified first)")
    promote.add_argument("version", help="version name, e.g. v0005")
    rollback = actions.add_parser("rollback", help="back to the previous current version, or to --to")
    rollback.add_argument("--to", help="this version instead of the previous one")


def _registry(args: argparse.Namespace, settings: StreamSettings) -> ModelRegistry:
    return ModelRegistry(args.registry or settings.registry_dir)


def options_from(settings: StreamSettings, args: argparse.Namespace) -> RetrainOptions:
    """Settings (env / TOML) first, then the flags given."""
    chosen = {"window_h": args.window_h, "budget_s": args.budget_s, "max_epochs": args.max_epochs,
              "gate_margin": args.margin, "gate_metric": args.metric}
    options = RetrainOptions(
        window_h=settings.retrain_window_h, budget_s=settings.retrain_budget_s,
        max_epochs=settings.retrain_max_epochs, holdout=settings.retrain_holdout,
        gate_metric=settings.gate_metric, gate_margin=settings.gate_margin,
        gate_min_cases=settings.gate_min_cases, exclude_window=settings.exclude_window,
        threads=settings.torch_threads, device=settings.device, lr=args.lr, model=args.model)
    for name, value in chosen.items():
        if value is not None:
            setattr(options, name, value)
    return options


def cmd_retrain(args: argparse.Namespace) -> None:
    settings = StreamSettings.load()
    _log_to_stderr(settings)
    store, registry = TrainingStore(args.store or settings.store_dir), _registry(args, settings)
    options = options_from(settings, args)

    def once() -> dict:
        report = retrain(store, registry, options)
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
        print(text, flush=True)
        if args.report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(text + "\n")
        return report

    if not args.every:
        once()
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_every(parse_duration(args.every), once, stop)


def cmd_registry(args: argparse.Namespace) -> None:
    registry = _registry(args, StreamSettings.load())
    if args.action == "list":
        current = registry.current()
        for version in registry.versions():
            manifest = registry.manifest(version)
            block = manifest.get("registry", {})
            holdout = manifest.get("metrics", {}).get("holdout", {})
            metrics = " ".join(f"{k}={holdout[k]:.4f}" for k in REPORTED[:2] if k in holdout)
            mark = "*" if current and current.version == version else " "
            print(f"{mark} {version}  {manifest['model']}-{manifest['weights_sha256'][:12]}  "
                  f"parent={block.get('parent')}  {metrics}")
        if current is None:
            print("(no current version)")
    elif args.action == "history":
        for entry in registry.history():
            print(orjson.dumps(entry).decode())
    elif args.action == "show":
        block = registry.manifest(args.version).get("registry")
        print(orjson.dumps(block, option=orjson.OPT_INDENT_2).decode())
    elif args.action == "add":
        version = registry.add_checkpoint(args.checkpoint)
        print(f"added {args.checkpoint} as {version}")
        if args.promote:
            registry.promote(version, f"added from {args.checkpoint}")
            print(f"current → {version}")
    elif args.action == "promote":
        registry.promote(args.version, "promoted by hand")
        print(f"current → {args.version}")
    else:
        pointer = registry.rollback(args.to)
        print(f"rolled back: current → {pointer.version}")


def _log_to_stderr(settings: StreamSettings) -> None:
    configure_logging(settings)  # text or JSON lines (AMSRM_LOG_FORMAT)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "retrain": cmd_retrain, "registry": cmd_registry,
}
