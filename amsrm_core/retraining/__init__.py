"""The retraining loop: training store, retrain with a promotion gate, vocabulary growth, hot swap.

See docs/RETRAINING.md.  The collector process lives in ``streams.collector.service`` (it is a
Kafka consumer); the model registry in ``amsrm_core.registry``.
"""
