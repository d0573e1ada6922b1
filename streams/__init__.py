"""The streaming path on Kafka, in rooms:

- ``worker``: the Faust app of the stream worker (topics, window table, scoring agent, the
  per-batch processing, the scoring child process);
- ``collector``: the process that turns labelled samples into the training store;
- ``ops``: the HTTP endpoint for metrics and health probes shared by both processes;
- ``clients``: small Kafka clients for users and tools (topic admin, subscriber);
- ``local``: running it all on one machine (broker engines, worker and collector subprocesses,
  the local stack, the demo, measurement helpers, the benchmark's no-op agent);
- ``faust_ext``: every use of a private Faust / aiokafka API, with the versions it was tested with;
- ``cli``: the streaming subcommands of ``amsrm``.

See docs/STREAMING.md.
"""
