#!/usr/bin/env python3
"""Index the record headers of a Nisshi 0.7 sqlite broker: nisshi-sqlite-index.py DB_FILE.

Nisshi's sqlite schema has no index on `header`, and its fetch reads each record's headers
with `header_fetch.sql` (a join on `header.topition, header.offset_id`): every record fetched
scans every header row of the broker. Our records carry two headers each, so a consumer's
fetch slowed down with the square of the topic: 60,000 records could not be read in two
minutes; with this index they are read at 15,000-28,000 records/s (docs/BROKER.md, "The
sqlite engine"). The broker's DDL is `create table if not exists`, so an index of ours
survives its restarts; it is created while the broker runs (sqlite locks the file).

Waits up to 30 s for the broker to create its schema. Idempotent; standard library only.
"""

import sqlite3
import sys
import time

INDEX = "CREATE INDEX IF NOT EXISTS aigo_header_record ON header (topition, offset_id)"
SCHEMA_WAIT_SECONDS = 30


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    path = sys.argv[1]
    deadline = time.monotonic() + SCHEMA_WAIT_SECONDS
    while True:
        try:
            # mode=rw: never create the file (a wrong path must fail, not make an empty db).
            with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30) as db:
                has_header = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'header'"
                ).fetchone()
                if has_header:
                    db.execute(INDEX)
                    print(f"{path}: header (topition, offset_id) indexed")
                    return 0
        except sqlite3.OperationalError as err:
            if time.monotonic() >= deadline:
                print(f"{path}: {err}", file=sys.stderr)
                return 1
        if time.monotonic() >= deadline:
            print(f"{path}: no header table after {SCHEMA_WAIT_SECONDS}s", file=sys.stderr)
            return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
