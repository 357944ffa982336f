-- Items only grow: a new one is added, a known one widens its first/last seen dates; ids never change.
INSERT INTO flower_types (flower_gubn, name, first_seen_date, last_seen_date)
VALUES (?, ?, ?, ?)
ON CONFLICT (flower_gubn, name) DO UPDATE SET
    first_seen_date = min(flower_types.first_seen_date, excluded.first_seen_date),
    last_seen_date = max(flower_types.last_seen_date, excluded.last_seen_date)
WHERE excluded.first_seen_date < flower_types.first_seen_date
   OR excluded.last_seen_date > flower_types.last_seen_date
