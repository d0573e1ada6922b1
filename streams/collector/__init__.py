"""The retraining collector: labelled samples topic → deduplicated, durable training store.

``service`` is the aiokafka consumer (flush = durable write, then commit); ``ops`` serves its
metrics and health probes.  Run it with ``amsrm collect`` (docs/RETRAINING.md).
"""
