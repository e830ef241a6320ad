"""Stripe at the edge: the operators' secrets, calls to Stripe, and the
sender of meter events."""
