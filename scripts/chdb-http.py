#!/usr/bin/env python3
"""A minimal ClickHouse HTTP interface in front of chdb (ClickHouse in-process, PyPI `chdb-core`),
so that the ClickHouse store's test suite runs its real DDL, RowBinary inserts and queries on a
current ClickHouse engine where only Debian's 18.16 server can be installed.

    python3 scripts/chdb-http.py PORT DATA_DIR

Serves POST / with the SQL in the body, or with `query=` in the URL and the data in the body
(`INSERT … FORMAT RowBinary`: the data goes through a file and the `file()` table function).
URL parameters: `database` (current database), settings (applied to the query), the rest ignored.
Errors answer 500 with ClickHouse's `Code: N. DB::Exception: …` text. Prints `ready` once
listening. Not a server for anything but tests: one query at a time, loopback only.
"""

import http.server
import os
import re
import sys
import tempfile
import threading
import urllib.parse

from chdb import session as chs

# Settings the store sends that chdb (one process, no cluster) has no use for.
IGNORED = {"database", "query", "load_balancing", "insert_distributed_sync", "insert_quorum",
           "distributed_ddl_task_timeout"}

INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\S+)\s*\(([^)]*)\)\s*FORMAT\s+RowBinary\s*$", re.I | re.S)
FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*$", re.I)


def main():
    port, data = int(sys.argv[1]), sys.argv[2]
    sess = chs.Session(data)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, code, body):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(200, b"Ok.\n")

        def do_POST(self):
            url = urllib.parse.urlparse(self.path)
            params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            settings = ", ".join(f"{k} = '{v}'" if not v.isdigit() else f"{k} = {v}"
                                 for k, v in params.items() if k not in IGNORED)
            db = params.get("database")
            try:
                with lock:
                    if db:
                        sess.query(f"CREATE DATABASE IF NOT EXISTS {db}")
                        sess.query(f"USE {db}")
                    else:
                        sess.query("USE default")
                    if "query" in params:
                        out = self.insert(params["query"], body, settings)
                    else:
                        out = self.select(body.decode("utf-8", "surrogateescape"), settings)
                self.answer(200, out)
            except Exception as e:  # the test sees ClickHouse's error text
                text = str(e)
                if "Code:" not in text:
                    text = "Code: 1000. DB::Exception: " + text
                self.answer(500, text.encode())

        def insert(self, query, body, settings):
            m = INSERT.match(query)
            if not m:
                raise ValueError(f"unsupported insert: {query}")
            table, columns = m.group(1), [c.strip() for c in m.group(2).split(",")]
            described = sess.query(f"DESCRIBE TABLE {table}", "TabSeparated").bytes().decode()
            types = {}
            for line in described.splitlines():
                parts = line.split("\t")
                types[parts[0]] = parts[1]
            structure = ", ".join(f"{c} {types[c]}" for c in columns)
            with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
                f.write(body)
                path = f.name
            try:
                sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
                       f"SELECT * FROM file('{path}', 'RowBinary', '{structure}')")
                if settings:
                    sql += f" SETTINGS {settings}"
                sess.query(sql)
            finally:
                os.unlink(path)
            return b""

        def select(self, sql, settings):
            m = FORMAT.search(sql)
            fmt = m.group(1) if m else "TabSeparated"
            if m:
                sql = sql[: m.start()]
            if settings and sql.lstrip().upper().startswith("SELECT"):
                sql = f"{sql} SETTINGS {settings}"
            res = sess.query(sql, fmt)
            return res.bytes() if res is not None else b""

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)

    # The test process that started this one has no way to stop it when it exits: leave as
    # soon as the parent is gone, so no server outlives the test run (nor holds its output).
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
