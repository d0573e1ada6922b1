"""``python -m streams worker -l info --without-web``: the Faust CLI for streams.worker.app.

The worker's event loop comes from the settings (``AMSRM_EVENT_LOOP``) unless ``-L``/``--loop`` is
given: Faust picks its loop only from that option.
"""

import sys

from streams.worker.app import app, settings

EVENT_LOOPS = ("asyncio", "uvloop")


def with_event_loop(argv: list[str], loop: str) -> list[str]:
    """``argv`` with Faust's ``--loop`` option set to ``loop``, unless it names one already."""
    if loop not in EVENT_LOOPS:
        raise SystemExit(f"AMSRM_EVENT_LOOP must be one of {EVENT_LOOPS}, got {loop!r}")
    if any(a in ("-L", "--loop") or a.startswith("--loop=") for a in argv[1:]) or loop == "asyncio":
        return argv
    return [argv[0], "--loop", loop, *argv[1:]]


def main() -> None:
    sys.argv = with_event_loop(sys.argv, settings.event_loop)
    app.main()


if __name__ == "__main__":
    main()
