"""What the relay tells its operator: metrics (``/metrics``), request ids and the access log."""
