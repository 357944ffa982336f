-- Every auction date on which each category traded, up to the given date: the links of the
-- category price index's chain.
SELECT DISTINCT b.auction_date, t.flower_gubn
FROM bidding_flowers b
JOIN flowers f ON f.id = b.flower_id
JOIN flower_types t ON t.id = f.flower_type_id
WHERE b.auction_date <= %s
