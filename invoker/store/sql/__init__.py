"""The store's SQL, written once for SQLite and PostgreSQL (`statements` says how)."""
