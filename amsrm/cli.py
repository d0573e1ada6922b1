"""The ``amsrm`` command line: the composition root that assembles every package's subcommands.

    amsrm data stats --dataset ml-100k
    amsrm train --dataset synthetic                                  # quick demo run
    amsrm train --dataset ml-100k --seeds 0 1 2 --threads 1 \\
        --results docs/results/ml-100k.json                         # the documented results
    amsrm evaluate --checkpoint runs/beauty                          # data set and protocol from its manifest
    amsrm demo                                                       # streaming demo (streams.cli)
    amsrm config-reference > docs/CONFIG.md                          # every setting, from amsrm.settings
    amsrm schemas                                                    # docs/schemas/, docs/asyncapi.yaml

Each package contributes ``register(sub)`` and ``COMMANDS``; the stream layer's commands import
Faust and the broker tools only when they run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import amsrm
import amsrm.schemas
import amsrm_core.cli
import amsrm_core.experiments.cli
import amsrm_core.retraining.cli
import streams.cli
from amsrm.errors import AmsrmError

Command = Callable[[argparse.Namespace], None]
PACKAGES = (amsrm_core.cli, amsrm_core.retraining.cli, amsrm_core.experiments.cli, streams.cli)


def cmd_config_reference(args: argparse.Namespace) -> None:
    from amsrm.config_reference import reference

    print(reference(), end="")


def cmd_schemas(args: argparse.Namespace) -> None:
    if amsrm.schemas.run(args):
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amsrm", description="AMSRM streaming recommender")
    parser.add_argument("--version", action="version", version=f"amsrm {amsrm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for package in PACKAGES:
        package.register(sub)
    sub.add_parser("config-reference", help="print the settings reference (docs/CONFIG.md) as markdown")
    amsrm.schemas.register_arguments(sub.add_parser(
        "schemas", help="write the messages' JSON Schemas (docs/schemas/) and docs/asyncapi.yaml"))
    return parser


def commands() -> dict[str, Command]:
    table: dict[str, Command] = {"config-reference": cmd_config_reference, "schemas": cmd_schemas}
    for package in PACKAGES:
        table.update(package.COMMANDS)
    return table


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands()[args.command](args)
    except AmsrmError as e:
        print(f"amsrm: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
