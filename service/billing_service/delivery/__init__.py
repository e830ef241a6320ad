"""Adapters that deliver what the outbox holds: mail over SMTP, push over
Expo's push API, and the operators' signed alert webhooks."""
