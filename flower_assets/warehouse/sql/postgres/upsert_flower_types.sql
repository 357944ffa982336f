-- Items only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
-- A known one whose records a correction removed (seen dates null) is seen again.
INSERT INTO flower_types (flower_gubn, name, first_seen_date, last_seen_date)
VALUES %s
ON CONFLICT (flower_gubn, name) DO UPDATE SET
    first_seen_date = LEAST(flower_types.first_seen_date, EXCLUDED.first_seen_date),
    last_seen_date = GREATEST(flower_types.last_seen_date, EXCLUDED.last_seen_date)
WHERE flower_types.first_seen_date IS NULL
   OR EXCLUDED.first_seen_date < flower_types.first_seen_date
   OR EXCLUDED.last_seen_date > flower_types.last_seen_date
