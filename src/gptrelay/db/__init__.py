"""Storage: an async engine chosen by ``DATABASE_URL``'s scheme, the tables, numbered migrations."""
