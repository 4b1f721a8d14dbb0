"""The workspace configuration: sources, segments, triggers, channels and the contact policy.

Loaded from the YAML file once at start-up (``workspace``) and handed to the runtime and the
connectors as plain models. It sits below the shell, so ``streams`` and ``connectors`` may read
it without importing the CLI or the HTTP app.
"""
