"""Who may do what and what it costs: keys, tenants, budgets and rate limits, prices, caches."""
