"""The Faust application, built from StreamSettings (env vars / AMSRM_CONFIG file).

Only the app lives here; topics, tables and agents are in their own modules and
are found through ``autodiscover`` (which agent module depends on the ``agent``
setting).  Run a worker with::

    faust -A streams.worker.app worker -l info --without-web      # or: python -m streams worker ...
"""

from __future__ import annotations

import importlib.util
from typing import Any

import faust

from amsrm.errors import ConfigError
from amsrm.logs import logging_config
from amsrm.settings import PROCESSING_GUARANTEES, StreamSettings
from streams.faust_ext import consumer_urls
from streams.worker.processing import DEAD_LETTER_HEADROOM, DEAD_LETTER_MAX_KEY

RECOMMEND = "streams.worker.agents"
SHARED_MODULES = ("streams.worker.lifecycle", "streams.worker.ops")  # every worker's hooks and endpoint


def agent_module(settings: StreamSettings) -> str:
    """The module whose agents this worker runs: the scoring agent, or a module named in full (the
    benchmark's no-op ``streams.local.passthrough``), so that nothing but ``recommend`` is built in."""
    if settings.agent == "recommend":
        return RECOMMEND
    if "." not in settings.agent or importlib.util.find_spec(settings.agent) is None:
        raise ConfigError(f"AMSRM_AGENT must be recommend or an importable module, got {settings.agent!r}")
    return settings.agent


def processing_guarantee(settings: StreamSettings) -> str:
    if settings.processing_guarantee not in PROCESSING_GUARANTEES:
        raise ConfigError(f"AMSRM_PROCESSING_GUARANTEE must be one of {PROCESSING_GUARANTEES}, "
                          f"got {settings.processing_guarantee!r}")
    return settings.processing_guarantee


def max_request_size(settings: StreamSettings) -> int:
    """The producers' request limit, refused when an accepted event's dead letter could not fit whole."""
    overhead = DEAD_LETTER_HEADROOM + DEAD_LETTER_MAX_KEY
    if settings.max_event_bytes + overhead > settings.producer_max_request_size:
        raise ConfigError(f"AMSRM_MAX_EVENT_BYTES ({settings.max_event_bytes}) must leave room in "
                          f"AMSRM_PRODUCER_MAX_REQUEST_SIZE ({settings.producer_max_request_size}) for "
                          f"{overhead} bytes of key and headers")
    return settings.producer_max_request_size


def app_options(settings: StreamSettings) -> dict[str, Any]:
    """faust.App keyword arguments for these settings."""
    module = agent_module(settings)
    return {
        "id": settings.app_id,
        "broker": settings.broker_url,
        # Faust's consumer with a settable fetch wait and the eager hand-off (streams.faust_ext)
        "broker_consumer": consumer_urls(settings.broker_url, settings.consumer_fetch_max_wait_ms,
                                         settings.eager_dispatch),
        "store": settings.store_url,
        "datadir": settings.data_dir,
        "autodiscover": (module, *SHARED_MODULES),
        # Faust also scans ``origin`` (and guesses it as the whole package when unset, starting
        # both agents): name the chosen agent module
        "origin": module,
        # exactly_once: per-partition transactions (streams.faust_ext.batch_gate; docs/STREAMING.md)
        "processing_guarantee": processing_guarantee(settings),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "table_standby_replicas": settings.table_standby_replicas,
        "producer_max_batch_size": settings.producer_max_batch_size,
        "producer_linger_ms": settings.producer_linger_ms,
        "producer_max_request_size": max_request_size(settings),
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_commit_interval": settings.commit_interval_s,
        # text: Faust's own log setup; json: one object per line (amsrm.logs)
        **({"logging_config": logging_config(settings)} if settings.log_format != "text" else {}),
    }


settings = StreamSettings.load()
app = faust.App(**app_options(settings))
