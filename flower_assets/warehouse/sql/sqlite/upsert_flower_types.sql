-- Items only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
-- A known one whose records a correction removed (seen dates null) is seen again.
INSERT INTO flower_types (flower_gubn, name, first_seen_date, last_seen_date)
VALUES (?, ?, ?, ?)
ON CONFLICT (flower_gubn, name) DO UPDATE SET
    first_seen_date = min(coalesce(flower_types.first_seen_date, excluded.first_seen_date), excluded.first_seen_date),
    last_seen_date = max(coalesce(flower_types.last_seen_date, excluded.last_seen_date), excluded.last_seen_date)
WHERE flower_types.first_seen_date IS NULL
   OR excluded.first_seen_date < flower_types.first_seen_date
   OR excluded.last_seen_date > flower_types.last_seen_date
