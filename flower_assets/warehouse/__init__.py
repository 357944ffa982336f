"""The warehouse: table declarations, migrations, and the SQLite / PostgreSQL writers."""
