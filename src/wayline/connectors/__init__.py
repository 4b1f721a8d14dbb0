"""Sources (HTTP collector, e-mail webhooks, store files, traffic simulator) and sinks."""
