-- The auction records of auction dates first..last with their item and variety: the market
-- layer's input (flower_assets.market.prices.RECORD_COLUMNS).
SELECT b.auction_date, t.flower_gubn, t.id AS flower_type_id, t.name AS item_name,
       b.flower_id, f.name AS variety_name, b.grade, b.quantity, b.avg_price, b.total_price
FROM bidding_flowers b
JOIN flowers f ON f.id = b.flower_id
JOIN flower_types t ON t.id = f.flower_type_id
WHERE b.auction_date >= %s AND b.auction_date <= %s
