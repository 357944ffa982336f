"""The work of each asset for one auction date, without Dagster: compute, write, record.

Each step is an object holding what a run shares (the warehouse, the API, what is stored) with
one method, `load(day) -> DateReport`: it computes and writes the date inside its batch-log row
and reports what the date now holds. `flower_assets.defs.auction.assets.AuctionUnit` (and
the market layer's `flower_market`) call it for every date of a run and record each report in
Dagster (`flower_assets.defs.dated.record`).
"""
