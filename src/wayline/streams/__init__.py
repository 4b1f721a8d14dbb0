"""The stream runtime: consumer-group workers, state stores, timers and the worker registry."""
