"""Tests of Stripe."""
