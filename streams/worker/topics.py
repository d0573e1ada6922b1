"""The four topics, with explicit partition counts (created up front by streams.clients.admin).

Every one carries raw bytes (key and value).  The events topic is consumed raw: validation
happens in the agent, so a malformed payload can never make deserialisation raise.  The
outputs are encoded by the worker through the models of amsrm.messages (docs/asyncapi.yaml).
"""

from streams.worker.app import app, settings

events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)
recommendations_topic = app.topic(settings.recommendations_topic, key_type=bytes, value_type=bytes,
                                  key_serializer="raw", value_serializer="raw",
                                  partitions=settings.output_partitions)
samples_topic = app.topic(settings.samples_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.output_partitions)
dead_letters_topic = app.topic(settings.dead_letters_topic, key_type=bytes, value_type=bytes,
                               key_serializer="raw", value_serializer="raw",
                               partitions=settings.output_partitions)
