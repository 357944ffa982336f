-- The items of those varieties: an item trades on the dates any of its varieties trades.
UPDATE flower_types SET
    first_seen_date = (SELECT min(first_seen_date) FROM flowers WHERE flower_type_id = flower_types.id),
    last_seen_date = (SELECT max(last_seen_date) FROM flowers WHERE flower_type_id = flower_types.id)
WHERE id IN (SELECT flower_type_id FROM flowers WHERE id IN (SELECT value FROM json_each(?)))
