"""The catalog: operators, their API keys, account kits, plans,
subscriptions, meters and projects."""
