-- Reserve one call of the key's daily quota before it is made: one atomic statement, so
-- concurrent runs and processes can never count past the quota between a check and a count.
-- Parameters: key fingerprint, KST date, quota, quota. One row changed = granted; none = refused.
INSERT INTO api_call_counts (key_fingerprint, kst_date, calls)
SELECT %s, %s, 1 WHERE %s > 0
ON CONFLICT (key_fingerprint, kst_date) DO UPDATE SET calls = api_call_counts.calls + 1
WHERE api_call_counts.calls < %s
