-- Varieties only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
INSERT INTO flowers (flower_type_id, name, first_seen_date, last_seen_date)
VALUES (?, ?, ?, ?)
ON CONFLICT (flower_type_id, name) DO UPDATE SET
    first_seen_date = min(flowers.first_seen_date, excluded.first_seen_date),
    last_seen_date = max(flowers.last_seen_date, excluded.last_seen_date)
WHERE excluded.first_seen_date < flowers.first_seen_date
   OR excluded.last_seen_date > flowers.last_seen_date
