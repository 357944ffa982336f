-- A correction can remove a variety's first or last record: its seen dates follow the records
-- again (null when none is left). The parameter is a JSON array of variety ids.
UPDATE flowers SET
    first_seen_date = (SELECT min(auction_date) FROM bidding_flowers WHERE flower_id = flowers.id),
    last_seen_date = (SELECT max(auction_date) FROM bidding_flowers WHERE flower_id = flowers.id)
WHERE id IN (SELECT value FROM json_each(?))
