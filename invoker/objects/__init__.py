"""The object store: buckets and objects of every tenant (the HTTP side is
`gateway/routes/buckets.py`).

- `names`: what it accepts (bucket names, keys, ...) and its errors (pure);
- `model`: its values and seams (`ObjectMeta`, `Blobs`, `Pins`);
- `service`: the use cases, crash and race order (`ObjectStore`);
- `sql` with `sqlite_db` / `postgres_db`: metadata in the configured store's database;
- `local_blobs` / `db_blobs`: bytes in a local directory or in that database;
- `legacy`: the one-time import of an old per-data-dir store;
- `opening`: which of these a store URL means (`open_objects`).
"""
