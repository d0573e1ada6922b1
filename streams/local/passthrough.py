"""A no-op agent with the same batching: the ceiling Faust + broker set for the scoring agent.

Forwards every raw event unchanged to the recommendations topic.  Only the
benchmark runs it (``AMSRM_AGENT=passthrough``).
"""

from __future__ import annotations

from streams.faust_ext import mark_finished
from streams.worker.app import app, settings
from streams.worker.topics import events_topic, recommendations_topic


@app.agent(events_topic, name="passthrough")
async def passthrough(stream) -> None:
    async for events in stream.take_events(settings.batch_max, within=settings.batch_latency_ms / 1000):
        for event in events:
            await recommendations_topic.send(key=event.message.key, value=event.message.value,
                                             value_serializer="raw")
            mark_finished(event.message)  # only then may its offset be committed (streams.faust_ext)
