"""Pure segment logic: rule language, compiler, membership transitions, triggers, contact policy.

No Kafka, ClickHouse, HTTP, clock or environment access here: time is passed in.
"""
