"""Pure profile logic: identity graph, profile state as a fold over events, merges.

No Kafka, ClickHouse, HTTP, clock or environment access here: time is passed in.
"""
