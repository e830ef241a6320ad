"""Customer billing and quota service."""
