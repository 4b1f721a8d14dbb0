"""Wayline: a Kafka-native customer data platform."""

__version__ = "0.1.0"
