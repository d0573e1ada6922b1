"""Running everything on one machine, for the demo, the benchmarks and the tests.

``broker`` (broker engines), ``worker_process`` and ``collector_process`` (subprocesses),
``stack`` (broker + topics + worker), ``demo``, ``measure`` (latency and throughput helpers),
``checkpoints`` (a small trained model on demand) and ``passthrough`` (the benchmark's no-op
agent).  Nothing in production imports this package.
"""
