"""What an operator sees of the service: structured logs with request ids (logs.py), metrics
(metrics.py) and traces (tracing.py), one setup for every entry point."""
