"""The end users' fixtures (the shared ones are in tests/conftest.py)."""
