-- The analytics schema. Applied by `PostgresStore::connect` (see the crate docs for running it
-- yourself). Every table is keyed by tenant first: no query reads across tenants.

CREATE TABLE tenants (
    id         text PRIMARY KEY,
    doc        jsonb NOT NULL
);

CREATE TABLE api_keys (
    key_hash   bytea PRIMARY KEY,
    tenant_id  text NOT NULL REFERENCES tenants (id)
);

CREATE TABLE experiments (
    tenant_id  text NOT NULL,
    id         text COLLATE "C" NOT NULL,
    doc        jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Raw events, partitioned by month on the timestamp. Monthly partitions are created as events
-- arrive (named events_pYYYYMM); the default partition takes anything else, so no event is ever
-- refused for its date. Ids sort byte-wise (COLLATE "C") like core's EventId, so keyset pages
-- agree with every other store.
CREATE TABLE events (
    tenant_id     text NOT NULL,
    id            text COLLATE "C" NOT NULL,
    ts            timestamptz NOT NULL,
    user_id       text,
    event_type    text NOT NULL,
    session_id    text,
    page          text,
    browser       text,
    device        text,
    country       text,
    properties    jsonb NOT NULL,
    experiment_id text,
    variant       text
) PARTITION BY RANGE (ts);

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Range edges, filtered summaries and the event log (newest first, keyset on (ts, id)) all read
-- one tenant's time range: a btree on (tenant, ts, id) serves each of them. See the crate docs
-- for the BRIN comparison.
CREATE INDEX events_tenant_ts ON events (tenant_id, ts, id);

-- The idempotency ledger: a unique index on a partitioned table must include the partition key,
-- which would let a retried event with another timestamp in; ids are deduplicated here instead.
CREATE TABLE event_ids (
    tenant_id  text NOT NULL,
    id         text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Counts per (level, period, dimension, value): level 0 = UTC hour, 1 = UTC day; period = hours
-- (or days) since the Unix epoch. Dimensions: 0 total (value ''), 1 event type, 2 page,
-- 3 device, 4 browser, 5 country.
CREATE TABLE rollups (
    tenant_id  text NOT NULL,
    level      smallint NOT NULL,
    period     bigint NOT NULL,
    dim        smallint NOT NULL,
    value      text NOT NULL,
    n          bigint NOT NULL,
    -- Dimension before period: a series of totals, or one breakdown over a range, is one
    -- contiguous index range.
    PRIMARY KEY (tenant_id, level, dim, period, value)
) WITH (fillfactor = 70);
-- Counters are updated in place batch after batch: free space on each page lets PostgreSQL make
-- those heap-only (HOT) updates, which skip the index (measured: see the crate docs).

-- A mergeable unique-user sketch (HyperLogLog++, postcard-encoded) per tenant and period.
CREATE TABLE user_sketches (
    tenant_id  text NOT NULL,
    level      smallint NOT NULL,
    period     bigint NOT NULL,
    sketch     bytea,
    PRIMARY KEY (tenant_id, level, period)
) WITH (fillfactor = 70);
-- Sketches are already dense or tiny; compressing them on every write only costs CPU.
ALTER TABLE user_sketches ALTER COLUMN sketch SET STORAGE EXTERNAL;

-- Per-user experiment state, kept at ingest from the newly stored events only: which variant a
-- user saw, when first and last, how many events, and which event types (so conversions can be
-- counted exactly for any conversion event type).
CREATE TABLE experiment_users (
    tenant_id      text NOT NULL,
    experiment_id  text NOT NULL,
    variant        text NOT NULL,
    user_id        text NOT NULL,
    first_exposure timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    events         bigint NOT NULL,
    event_types    text[] NOT NULL,
    PRIMARY KEY (tenant_id, experiment_id, variant, user_id)
) WITH (fillfactor = 70);
