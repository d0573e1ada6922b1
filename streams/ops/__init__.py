"""Operations shared by the worker and the collector: the HTTP endpoint for Prometheus metrics
and health probes (``server``) and the metric definitions (``metrics``).  docs/DEPLOY.md."""
