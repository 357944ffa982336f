-- Varieties only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
INSERT INTO flowers (flower_type_id, name, first_seen_date, last_seen_date)
VALUES %s
ON CONFLICT (flower_type_id, name) DO UPDATE SET
    first_seen_date = LEAST(flowers.first_seen_date, EXCLUDED.first_seen_date),
    last_seen_date = GREATEST(flowers.last_seen_date, EXCLUDED.last_seen_date)
WHERE EXCLUDED.first_seen_date < flowers.first_seen_date
   OR EXCLUDED.last_seen_date > flowers.last_seen_date
