"""Shared storage backends of the relay, for several relay processes behind a load balancer.

- ``settings``: the typed ``[storage]`` settings (PostgreSQL DSN, S3 endpoint; secrets in files);
- ``migrations``: versioned schema steps for SQLite and PostgreSQL, and the start-up policy;
- ``schema_pg``: the index tables in PostgreSQL (the SQLite schema's twin);
- ``pg``: the asyncpg pool, transactions with safe retries, errors as ``StorageError``;
- ``s3``: blobs in an S3-compatible store (aiobotocore): streaming upload and download,
  presigned GETs, the orphan sweep;
- ``bus``: mailbox wake-ups across processes over PostgreSQL LISTEN/NOTIFY.

The decisions are in ``docs/design/relay-cluster.md``.
"""
