"""The aT API side: client, envelope parsing, errors, categories, response cache and quota."""
