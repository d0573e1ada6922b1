"""The streaming path: a Faust worker that keeps per-user windows and publishes Top-K recommendations.

Layout (as Faust projects are laid out): ``app`` (the faust.App only), ``records``
(message schemas), ``topics``, ``tables``, ``agents`` (the scoring agent),
``passthrough`` (a no-op agent for benchmarks); ``settings`` is the one typed
configuration; ``broker`` and ``admin`` start the embedded broker and create topics.
See docs/STREAMING.md.
"""
