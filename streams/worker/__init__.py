"""The stream worker: a Faust app that keeps per-user windows and publishes Top-K recommendations.

Laid out as Faust projects are: ``app`` (the faust.App only), ``topics``, ``tables``, ``agents``
(the scoring agent) and ``lifecycle`` (hooks every agent module shares); ``processing`` is what
happens to one micro-batch, ``pipeline`` overlaps batches, ``validation`` and ``state`` turn bytes
into events and windows, ``scoring_process`` scores in a child process, ``heap`` tunes the garbage
collector, ``transport`` is Faust's consumer with the project's settings, ``ops`` wires the
metrics and health endpoint.  Run it with ``python -m streams worker`` or ``amsrm worker``.
"""
