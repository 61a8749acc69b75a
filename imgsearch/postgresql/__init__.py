"""Django's PostgreSQL backend with a connection pool that knows when the database is away (base.py)."""
