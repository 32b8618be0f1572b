"""The base layer every folder may import, and that imports nothing else of ours: the one
exception hierarchy (errors.py), points and their line protocol (points.py), the SQL state
database (statedb.py, SQLite WAL or PostgreSQL) and the one backoff helper (retry.py)."""
