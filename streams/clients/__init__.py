"""Small Kafka clients for users and tools: ``admin`` creates the topics with explicit partition
counts; ``subscriber`` reads recommendations as a downstream service would (deduplicating)."""
