-- Raw usage events. First write wins per (tenant, event id): a duplicate can only
-- come from a retried insert, and the version (higher for an earlier batch) makes
-- a merge keep the first; every read uses FINAL meanwhile. Partitioned by month,
-- so old months are dropped whole (docs/operations.md). Sorted by day first: the
-- rollup reads whole days and the usage query a tenant's days; the batch index
-- lets the real-time tail (batches past the watermark) skip every older part.
CREATE TABLE IF NOT EXISTS $database.usage_events $on_cluster
(
    tenant_id UInt64,
    event_id String,
    meter_id UInt64,
    quantity Decimal(20, 6),
    occurred_at DateTime64(6, 'UTC'),
    received_at DateTime64(6, 'UTC'),
    source LowCardinality(String),
    dimension String,
    attributes String,
    batch UInt64,
    position UInt32,
    version UInt64 MATERIALIZED bitNot(batch),
    INDEX batch_range batch TYPE minmax GRANULARITY 1
)
ENGINE = $engine
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (toDate(occurred_at), tenant_id, meter_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000
