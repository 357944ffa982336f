-- Varieties only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
-- A known one whose records a correction removed (seen dates null) is seen again.
INSERT INTO flowers (flower_type_id, name, first_seen_date, last_seen_date)
VALUES %s
ON CONFLICT (flower_type_id, name) DO UPDATE SET
    first_seen_date = LEAST(flowers.first_seen_date, EXCLUDED.first_seen_date),
    last_seen_date = GREATEST(flowers.last_seen_date, EXCLUDED.last_seen_date)
WHERE flowers.first_seen_date IS NULL
   OR EXCLUDED.first_seen_date < flowers.first_seen_date
   OR EXCLUDED.last_seen_date > flowers.last_seen_date
