"""The Faust application, built from StreamSettings (env vars / AMSRM_CONFIG file).

Only the app lives here; topics, tables and agents are in their own modules and
are found through ``autodiscover`` (which agent module depends on the ``agent``
setting).  Run a worker with::

    faust -A streams.app worker -l info --without-web      # or: python -m streams worker ...
"""

from __future__ import annotations

from typing import Any

import faust

from streams.logs import logging_config
from streams.settings import StreamSettings
from streams.transport import consumer_urls

AGENT_MODULES = {"recommend": ("streams.agents", "streams.lifecycle", "streams.worker_ops"),
                 "passthrough": ("streams.passthrough", "streams.lifecycle", "streams.worker_ops")}


def app_options(settings: StreamSettings) -> dict[str, Any]:
    """faust.App keyword arguments for these settings."""
    if settings.agent not in AGENT_MODULES:
        raise ValueError(f"AMSRM_AGENT must be one of {sorted(AGENT_MODULES)}, got {settings.agent!r}")
    return {
        "id": settings.app_id,
        "broker": settings.broker_url,
        "broker_consumer": consumer_urls(settings.broker_url),  # Faust's consumer, fetch wait tunable
        "store": settings.store_url,
        "datadir": settings.data_dir,
        "autodiscover": AGENT_MODULES[settings.agent],
        # Faust also scans ``origin`` (and guesses it as the whole package when unset, starting
        # both agents): name the chosen agent module
        "origin": AGENT_MODULES[settings.agent][0],
        # the embedded broker has no idempotent producer; consumers deduplicate by event id
        "processing_guarantee": "at_least_once",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "table_standby_replicas": settings.table_standby_replicas,
        "producer_max_batch_size": settings.producer_max_batch_size,
        "producer_linger_ms": settings.producer_linger_ms,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_commit_interval": settings.commit_interval_s,
        # text: Faust's own log setup; json: one object per line (streams.logs)
        **({"logging_config": logging_config(settings)} if settings.log_format != "text" else {}),
    }


settings = StreamSettings.load()
app = faust.App(**app_options(settings))
