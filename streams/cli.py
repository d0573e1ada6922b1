"""The streaming subcommands of ``amsrm``: broker, topics, worker, collect, produce, subscribe, demo.

Wired into the command line by amsrm.cli (``register(sub)``, ``COMMANDS``).  Each command
imports what it runs only when it runs, so ``amsrm train`` never loads Faust.

Every command reads StreamSettings from the environment (AMSRM_*, or a TOML file
named by AMSRM_CONFIG); ``--broker-url`` overrides the broker for one command.

    amsrm broker                                   # embedded broker on :9092 with the topics
    amsrm worker                                   # a stream worker (= python -m streams worker)
    amsrm produce replay --dataset ml-100k --rate 500
    amsrm produce synthetic --rate 200 --events 10000
    amsrm subscribe --user u42
    amsrm collect                                  # samples topic → training store (long-running)
    amsrm demo                                     # everything, on synthetic data
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from amsrm.settings import StreamSettings
from amsrm_core.data import DATASETS, load_dataset
from amsrm_core.data.synthetic import SyntheticConfig


def _settings(args: argparse.Namespace) -> StreamSettings:
    settings = StreamSettings.load()
    return settings.replace(broker_url=args.broker_url) if getattr(args, "broker_url", None) else settings


def _broker_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker-url", help="kafka://host:port (default: AMSRM_BROKER_URL)")


def _engine_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="tansu", choices=["tansu", "kafka"],
                        help="local broker: tansu (embedded, memory only, pip only) or kafka "
                             "(Apache Kafka 4, KRaft; needs Java 17 and Maven)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the streaming subcommands to the ``amsrm`` parser."""
    broker = sub.add_parser("broker", help="run a local broker (Tansu or Apache Kafka) with the topics")
    broker.add_argument("--host", default="127.0.0.1", help="address to listen on")
    broker.add_argument("--port", type=int, default=9092, help="client port")
    _engine_arg(broker)
    broker.add_argument("--data-dir", type=Path,
                        help="kafka: keep topics and offsets here (default: a temp dir)")

    topics = sub.add_parser("topics", help="create the topics on the configured broker (e.g. a real cluster)")
    _broker_arg(topics)

    worker = sub.add_parser("worker", help="run a stream worker (Faust), configured by AMSRM_* only")
    worker.add_argument("-l", "--loglevel", help="log level (default: AMSRM_LOG_LEVEL)")

    collect = sub.add_parser("collect", help="samples topic → training store (runs until stopped)")
    _broker_arg(collect)
    collect.add_argument("--store", help="training store folder (default: AMSRM_STORE_DIR)")

    produce = sub.add_parser("produce", help="send behaviour events to the events topic")
    kinds = produce.add_subparsers(dest="source", required=True)
    rep = kinds.add_parser("replay", help="a data set's events in time order (clockless: users interleaved)")
    rep.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASETS)}")
    rep.add_argument("--data", help="data path (default: $AMSRM_DATA/<folder>, else ./data/<folder>)")
    pace = rep.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="events per second (default 500)")
    pace.add_argument("--speed", type=float, help="replay the data set's clock this many times faster")
    rep.add_argument("--max-gap-s", type=float, default=1.0, help="with --speed: cap on any idle gap")
    rep.add_argument("--limit", type=int, help="send only the first N events")
    rep.add_argument("--no-side-fields", action="store_true", help="omit user/item side fields")
    _broker_arg(rep)
    syn = kinds.add_parser("synthetic", help="the synthetic generator as an endless live stream")
    syn.add_argument("--rate", type=float, default=100.0, help="events per second (0 = as fast as possible)")
    syn.add_argument("--events", type=int, help="stop after N events (default: run until Ctrl-C)")
    syn.add_argument("--users", type=int, default=SyntheticConfig.n_users, help="users in the catalogue")
    syn.add_argument("--items", type=int, default=SyntheticConfig.n_items, help="items in the catalogue")
    syn.add_argument("--seed", type=int, default=0, help="random seed of the generator")
    _broker_arg(syn)

    subscribe = sub.add_parser("subscribe", help="print recommendations as they arrive")
    subscribe.add_argument("--user", help="only this user's recommendations")
    subscribe.add_argument("--from-beginning", action="store_true", help="start at the oldest retained one")
    subscribe.add_argument("--limit", type=int, help="stop after N recommendations")
    _broker_arg(subscribe)

    demo = sub.add_parser("demo", help="broker + model + worker + replay + live recommendations + summary")
    demo.add_argument("--data", default="synthetic", help="data set name (default: the built-in synthetic)")
    demo.add_argument("--data-path", help="files of a real data set (default: $AMSRM_DATA/<folder>)")
    demo.add_argument("--events", type=int, default=3000, help="events to replay")
    demo.add_argument("--rate", type=float, default=500.0, help="events per second")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs of the demo model")
    demo.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="model, logs and worker state")
    _engine_arg(demo)


def cmd_broker(args: argparse.Namespace) -> None:
    from streams.clients.admin import create_topics
    from streams.local.broker import engine_settings, make_broker

    with make_broker(args.engine, port=args.port, host=args.host, data_dir=args.data_dir) as broker:
        settings = engine_settings(StreamSettings.load(), broker)
        created = asyncio.run(create_topics(settings))
        print(f"{args.engine} broker on {broker.url}; topics: {', '.join(created) or 'already there'}")
        extra = " AMSRM_CONSUMER_FETCH_MAX_WAIT_MS=10" if args.engine == "tansu" else ""
        print(f"export AMSRM_BROKER_URL={broker.url}{extra}   # Ctrl-C stops")
        _wait_for_interrupt()


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM, so that the caller's context managers clean up either way."""
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        signal.sigwait(signals)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def cmd_topics(args: argparse.Namespace) -> None:
    from streams.clients.admin import create_topics

    settings = _settings(args)
    created = asyncio.run(create_topics(settings))
    print(f"topics ready on {settings.broker_url}; created: {', '.join(created) or 'none (all existed)'}")


def cmd_worker(args: argparse.Namespace) -> None:
    """Faust's ``worker`` command for streams.worker.app.  Faust's own web server stays off: the worker's
    metrics and probes are served on AMSRM_OPS_PORT (streams.worker.ops, docs/DEPLOY.md)."""
    import sys

    from streams.worker.app import app, settings

    sys.argv = ["amsrm worker", "worker", "-l", args.loglevel or settings.log_level, "--without-web"]
    app.main()


def cmd_collect(args: argparse.Namespace) -> None:
    from amsrm.logs import configure as configure_logging
    from streams.collector.service import collect

    settings = _settings(args)
    settings = settings.replace(store_dir=args.store) if args.store else settings
    configure_logging(settings)  # text or JSON lines (AMSRM_LOG_FORMAT)
    stats = asyncio.run(collect(settings))
    print(f"collector stopped: {stats}")


def cmd_produce(args: argparse.Namespace) -> None:
    from producers.replay import replay
    from producers.synthetic import produce_synthetic

    settings = _settings(args)
    if args.source == "replay":
        data = load_dataset(args.dataset, args.data)
        rate = args.rate if args.rate is not None or args.speed is not None else 500.0
        work = replay(settings, data, rate=rate, speed=args.speed, limit=args.limit,
                      side_fields=not args.no_side_fields, max_gap_s=args.max_gap_s)
    else:
        config = SyntheticConfig(n_users=args.users, n_items=args.items, seed=args.seed)
        work = produce_synthetic(settings, args.rate, args.events, config)
    try:
        stats = asyncio.run(work)
    except KeyboardInterrupt:
        print("stopped")
        return
    print(f"sent {stats.sent} events in {stats.seconds:.1f}s ({stats.events_per_s:.0f}/s) "
          f"to {settings.events_topic}")


def cmd_subscribe(args: argparse.Namespace) -> None:
    from streams.clients.subscriber import subscribe

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(subscribe(_settings(args), args.user, args.from_beginning, args.limit))


def cmd_demo(args: argparse.Namespace) -> None:
    from streams.local.demo import DemoOptions, run_demo

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    run_demo(DemoOptions(dataset=args.data, data_path=args.data_path, events=args.events, rate=args.rate,
                         epochs=args.epochs, workdir=args.workdir, engine=args.engine))


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "broker": cmd_broker, "topics": cmd_topics, "worker": cmd_worker, "produce": cmd_produce,
    "subscribe": cmd_subscribe, "demo": cmd_demo, "collect": cmd_collect,
}

