"""Stripe: the operators' accounts, webhooks, the client, the meter
sender and its stream, the cursor and the outbox."""
