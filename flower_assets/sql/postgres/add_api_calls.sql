-- Count calls against the key's quota for one KST day; concurrent runs add up, never overwrite.
INSERT INTO api_call_counts (key_fingerprint, kst_date, calls)
VALUES (%s, %s, %s)
ON CONFLICT (key_fingerprint, kst_date) DO UPDATE SET calls = api_call_counts.calls + excluded.calls
