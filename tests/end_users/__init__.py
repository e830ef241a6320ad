"""Tests of the end users."""
