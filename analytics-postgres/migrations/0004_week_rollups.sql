-- `period_stats` gains level 2, UTC weeks (Monday to Sunday; period = weeks from the one holding
-- 1970-01-01), so a month's summary reads about 10 rows instead of 31. Rows of existing events
-- have no week rows yet: rebuild them all from `events` on the next `PostgresStore::connect`.
INSERT INTO period_stats_rebuild
SELECT true WHERE EXISTS (SELECT 1 FROM events)
ON CONFLICT DO NOTHING;
