"""The catalog's fixtures (the shared ones are in tests/conftest.py)."""
