-- Varieties only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
-- A known one whose records a correction removed (seen dates null) is seen again.
INSERT INTO flowers (flower_type_id, name, first_seen_date, last_seen_date)
VALUES (?, ?, ?, ?)
ON CONFLICT (flower_type_id, name) DO UPDATE SET
    first_seen_date = min(coalesce(flowers.first_seen_date, excluded.first_seen_date), excluded.first_seen_date),
    last_seen_date = max(coalesce(flowers.last_seen_date, excluded.last_seen_date), excluded.last_seen_date)
WHERE flowers.first_seen_date IS NULL
   OR excluded.first_seen_date < flowers.first_seen_date
   OR excluded.last_seen_date > flowers.last_seen_date
