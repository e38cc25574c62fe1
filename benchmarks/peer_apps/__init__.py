"""Workers and callers of the peer systems (Celery, RQ, FastStream) and the caller side the benchmarks share."""
