"""What the server tells operators: Prometheus metrics, OpenTelemetry traces, the request log, logs."""
