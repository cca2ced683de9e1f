"""Analytics and outcomes: the report store, its loader, survey outcomes, the statistics and the REST reports."""
