"""Storage: the schema, engines for SQLite and PostgreSQL, and the Store."""
