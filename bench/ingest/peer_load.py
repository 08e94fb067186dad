"""Bulk-load peer for bench/ingest: the same NDJSON into one plain SQLite table with
Python's sqlite3 executemany, 1000 rows per transaction, WAL + synchronous=FULL (the
settings fhirlake uses). Each line is json.loads'ed to get resourceType and id — the least
any loader must do. No history, no versions, no meta: a floor, not a FHIR server.
usage: peer_load.py DBFILE NDJSON..."""
import json
import sqlite3
import sys
import time


def rows(paths):
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    yield r["resourceType"], r.get("id"), line.decode()


def main():
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE res(rtype TEXT, id TEXT, body TEXT, PRIMARY KEY(rtype, id))")
    t0 = time.monotonic()
    n, batch = 0, []
    for row in rows(sys.argv[2:]):
        batch.append(row)
        if len(batch) == 1000:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO res VALUES(?,?,?)", batch)
            db.execute("COMMIT")
            n += len(batch)
            batch = []
    if batch:
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO res VALUES(?,?,?)", batch)
        db.execute("COMMIT")
        n += len(batch)
    s = time.monotonic() - t0
    print(f"peer loaded {n} resources in {s:.2f} s ({n / s:.0f} resources/s)")


main()
