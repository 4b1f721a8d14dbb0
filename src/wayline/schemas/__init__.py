"""Event, trigger and profile contracts: models, codecs, JSON Schemas and example messages."""
