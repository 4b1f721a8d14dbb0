-- Every topic Wayline writes, one table each. ReplacingMergeTree keyed by each record's id (and
-- version where it has one), with the source partition and offset kept: a replay or a re-sent
-- batch adds rows that the merge (or FINAL) folds away. Rows are keyed by profile id first where
-- a profile's rows are looked up together, so a profile's data can be found and deleted.
CREATE TABLE IF NOT EXISTS {db}.events (
    profile_id String,
    message_id String,
    type LowCardinality(String),
    event LowCardinality(String),
    channel LowCardinality(String),
    timestamp DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    order_id String,
    revenue Float64,
    properties String,
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY (profile_id, message_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.triggers (
    profile_id String,
    id String,
    trigger LowCardinality(String),
    occasion String,
    rule_version UInt32,
    time DateTime64(3, 'UTC'),
    data String,
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY (profile_id, id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.deliveries (
    profile_id String,
    delivery_id String,
    trigger_id String,
    trigger LowCardinality(String),
    subscription LowCardinality(String),
    channel LowCardinality(String),
    channel_type LowCardinality(String),
    kind LowCardinality(String),
    status LowCardinality(String),
    final UInt8,
    reason String,
    attempt UInt32,
    at DateTime64(3, 'UTC'),
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY (profile_id, delivery_id, attempt, status)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.segment_transitions (
    profile_id String,
    id String,
    segment LowCardinality(String),
    transition LowCardinality(String),
    rule_version UInt32,
    at DateTime64(3, 'UTC'),
    cause String,
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY (profile_id, id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.profiles (
    profile_id String,
    deleted UInt8,
    order_count UInt32,
    revenue Float64,
    first_seen Nullable(DateTime64(3, 'UTC')),
    last_seen Nullable(DateTime64(3, 'UTC')),
    segments Array(String),
    document String,
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY profile_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS {db}.identity_merges (
    profile_id String,
    merged_id String,
    kind LowCardinality(String),
    reason String,
    message_id String,
    at DateTime64(3, 'UTC'),
    record String,
    src_partition UInt32,
    src_offset UInt64
) ENGINE = ReplacingMergeTree(src_offset)
ORDER BY (src_partition, src_offset)
SETTINGS non_replicated_deduplication_window = 10000;
