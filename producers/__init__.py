"""Event producers: replay a data set, or stream the synthetic generator, into the events topic.

Both use aiokafka and produce the documented event (amsrm.messages.BehaviourEvent,
docs/schemas/event.schema.json), keyed by user id.  ``amsrm produce replay`` / ``amsrm produce synthetic``.
"""
