"""The per-user window table: RocksDB (rocksdict) locally, a compacted changelog in Kafka.

Keys are user ids (bytes, exactly the input key), values are encoded
streams.worker.state.UserWindow objects.  Co-partitioned with the events topic: same
partition count, and every write happens in the context of an event of that user's
partition.  Each value is bounded (n events, each bounded by the validation limits).
"""

from streams.worker.app import app, settings

windows_table = app.Table(
    "windows",
    key_type=bytes,  # bytes types mean the raw codec for keys and values
    value_type=bytes,
    partitions=settings.partitions,
    options={"driver": "rocksdict"},  # faust tries python-rocksdb first; we ship rocksdict (docs/BROKER.md)
    help="last n events of each user, with their side fields",
)
