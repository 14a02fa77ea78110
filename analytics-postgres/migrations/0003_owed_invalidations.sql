-- Cache invalidations owed after an ingest whose events were committed while the cache could
-- not be reached. Every instance settles them before it trusts its cache again.
CREATE TABLE owed_invalidations (
    id        bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    tags      text[] NOT NULL,
    owed_at   timestamptz NOT NULL DEFAULT now()
);
