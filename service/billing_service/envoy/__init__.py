"""Envoy's rate-limit service (envoy.service.ratelimit.v3), an adapter at the edge."""
