"""Billing: the billing page's months, usage and cost, credits and bills."""
