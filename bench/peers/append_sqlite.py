"""Peer for Tenet's ledger append benchmark: SQLite in WAL mode with synchronous=FULL (or
OFF), one transaction per batch of 200-byte events, for a fixed time.

usage: append_sqlite.py SECONDS"""
import os
import sqlite3
import sys
import tempfile
import time

budget = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
for label, sync in (("fdatasync every batch", "FULL"), ("no sync", "OFF")):
    for batch in (100, 1000):
        with tempfile.TemporaryDirectory() as d:
            db = sqlite3.connect(os.path.join(d, "log.db"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={sync}")
            db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
            rows = [(('{"event":%d,"pad":"' % i).encode().ljust(198, b"x") + b'"}',)
                    for i in range(batch)]
            n = 0
            start = time.perf_counter()
            while time.perf_counter() - start < budget:
                db.execute("BEGIN")
                db.executemany("INSERT INTO log (entry) VALUES (?)", rows)
                db.execute("COMMIT")
                n += batch
            rate = n / (time.perf_counter() - start)
            db.close()
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            print(f"sqlite WAL, {label}, batches of {batch}: {rate:.0f} events/s "
                  f"({size // max(n, 1)} bytes on disk per 200-byte event)")
