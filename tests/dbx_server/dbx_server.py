"""A Databricks API test server: the OAuth M2M token endpoint and the SQL Statement
Execution API, executing every received statement on a local Spark + Delta session that
reads the same S3 server as fhirlake (s3:// and s3a:// both go through hadoop-aws's S3A).

What it maps (and so cannot prove about real Databricks):
  - Unity Catalog: a three-part name `catalog`.`schema`.`table` is rewritten to the Spark
    database `catalog__schema` (created on first use) and table `table`; no grants, no
    external locations, no catalog permissions are checked. Managed tables live in a local
    spark-warehouse directory, not in the workspace's storage.
  - The SQL is Spark 3.5 + Delta 3.2 SQL, run by a real engine; Databricks SQL warehouse
    dialect differences (Photon, DBR-only syntax) are not covered.
  - Named statement parameters ({"name", "value", "type"}) are bound by Spark's own
    parameter markers (spark.sql(q, args=...)), so a :name in the SQL is really a parameter.
  - Statements run one at a time; wait_timeout is honoured by answering PENDING first when
    the client asked for a short wait (FHIRLAKE_DBX_TEST_ASYNC=1 makes every statement
    asynchronous so that polling is exercised).
  - Tokens: client_credentials with HTTP Basic against one configured id/secret; the token
    lifetime is short (expires_in from --token-ttl) so refresh is exercised.

Run: python3 dbx_server.py --port P --s3-endpoint URL --client-id ID --client-secret S
     [--warehouse WH] [--token-ttl SECONDS] [--warehouse-dir DIR]
Log: one line per request on stderr; GET /test/log returns the statements executed and
their parameters (JSON).
"""
import argparse
import base64
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

THREE_PART = re.compile(r"`([A-Za-z0-9_-]+)`\.`([A-Za-z0-9_-]+)`\.`([A-Za-z0-9_-]+)`")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.spark = None
        self.tokens = {}          # token -> expiry
        self.statements = {}      # id -> response dict
        self.executed = []        # SQL actually run (after rewriting)
        self.params = []          # its named parameters
        self.token_requests = 0

    def session(self):
        if self.spark is None:
            from test_s3_spark import spark_s3_session
            a = self.args
            self.spark = spark_s3_session(a.s3_endpoint, a.s3_key, a.s3_secret, a.warehouse_dir)
        return self.spark


def rewrite(sql, spark):
    """catalog.schema.table -> database catalog__schema (created if needed)."""
    def sub(m):
        db = f"{m.group(1)}__{m.group(2)}"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{db}`")
        return f"`{db}`.`{m.group(3)}`"
    return THREE_PART.sub(sub, sql)


PARAM_TYPES = {"STRING": str, "INT": int, "BIGINT": int, "SMALLINT": int, "TINYINT": int,
               "DOUBLE": float, "FLOAT": float, "BOOLEAN": lambda v: v.lower() == "true"}


def bind(params):
    """The statement API's named parameters -> Spark's args (named parameter markers)."""
    args = {}
    for p in params or []:
        conv = PARAM_TYPES.get(p.get("type", "STRING"))
        if conv is None or "name" not in p:
            raise ValueError(f"unsupported parameter {p}")
        args[p["name"]] = None if p.get("value") is None else conv(p["value"])
    return args


def run_statement(st, sql, params=None):
    """Runs sql (with the statement API's named parameters) on Spark; returns the
    Databricks-shaped status/result parts."""
    try:
        with st.lock:
            spark = st.session()
            q = rewrite(sql, spark)
            args = bind(params)
            st.executed.append(q)
            st.params.append(args)
            df = spark.sql(q, args=args) if args else spark.sql(q)
            rows = df.collect() if df.columns else []
        data = [[None if v is None else str(v) for v in r] for r in rows]
        cols = [{"name": c, "position": i} for i, c in enumerate(df.columns)]
        return {"status": {"state": "SUCCEEDED"},
                "manifest": {"schema": {"column_count": len(cols), "columns": cols},
                             "total_row_count": len(data)},
                "result": {"data_array": data, "row_count": len(data)}}
    except Exception as e:  # AnalysisException, ParseException, Py4J errors...
        text = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        code = "PARSE_SYNTAX_ERROR" if "PARSE_SYNTAX_ERROR" in str(e) or "ParseException" in type(e).__name__ \
            else "TABLE_OR_VIEW_NOT_FOUND" if "TABLE_OR_VIEW_NOT_FOUND" in str(e) else "BAD_REQUEST"
        return {"status": {"state": "FAILED", "error": {"error_code": code, "message": text[:2000]}}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("dbx_server: " + (fmt % a) + "\n")

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self):
        st = self.server.st
        h = self.headers.get("Authorization", "")
        if not h.startswith("Bearer "):
            return False
        exp = st.tokens.get(h[7:])
        return exp is not None and exp > time.time()

    def do_POST(self):
        st, a = self.server.st, self.server.st.args
        raw = self.body()
        if self.path == "/oidc/v1/token":
            st.token_requests += 1
            auth = self.headers.get("Authorization", "")
            want = "Basic " + base64.b64encode(f"{a.client_id}:{a.client_secret}".encode()).decode()
            form = dict(p.split("=", 1) for p in raw.decode().split("&") if "=" in p)
            if auth != want or a.refuse_tokens:
                return self.reply(401, {"error": "invalid_client",
                                        "error_description": "Client authentication failed"})
            if form.get("grant_type") != "client_credentials" or form.get("scope") != "all-apis":
                return self.reply(400, {"error": "invalid_request",
                                        "error_description": "grant_type/scope"})
            tok = uuid.uuid4().hex
            st.tokens[tok] = time.time() + a.token_ttl
            return self.reply(200, {"access_token": tok, "token_type": "Bearer",
                                    "expires_in": a.token_ttl, "scope": "all-apis"})
        if self.path == "/api/2.0/sql/statements":
            if not self.authorized():
                return self.reply(401, {"error_code": "UNAUTHENTICATED",
                                        "message": "invalid or expired access token"})
            req = json.loads(raw or b"{}")
            if req.get("warehouse_id") != a.warehouse:
                return self.reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                        "message": f"SQL warehouse {req.get('warehouse_id')} does not exist"})
            if req.get("on_wait_timeout", "CONTINUE") != "CONTINUE" or "statement" not in req:
                return self.reply(400, {"error_code": "INVALID_PARAMETER_VALUE",
                                        "message": "statement and on_wait_timeout CONTINUE expected"})
            sid = str(uuid.uuid4())
            if a.async_statements:   # answer PENDING, run in the background: polling exercised
                st.statements[sid] = {"statement_id": sid, "status": {"state": "PENDING"}}

                def bg():
                    st.statements[sid] = dict(run_statement(st, req["statement"], req.get("parameters")), statement_id=sid)
                threading.Thread(target=bg, daemon=True).start()
                return self.reply(200, st.statements[sid])
            st.statements[sid] = dict(run_statement(st, req["statement"], req.get("parameters")), statement_id=sid)
            return self.reply(200, st.statements[sid])
        return self.reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

    def do_GET(self):
        st = self.server.st
        if self.path == "/test/log":
            return self.reply(200, {"executed": st.executed, "params": st.params, "token_requests": st.token_requests})
        m = re.fullmatch(r"/api/2\.0/sql/statements/([0-9a-f-]+)", self.path)
        if m:
            if not self.authorized():
                return self.reply(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
            s = st.statements.get(m.group(1))
            if not s:
                return self.reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such statement"})
            return self.reply(200, s)
        if self.path == "/health":
            return self.reply(200, {"ok": True})
        return self.reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--s3-endpoint", required=True)
    p.add_argument("--s3-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    p.add_argument("--s3-secret", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--warehouse", default="wh-test")
    p.add_argument("--token-ttl", type=int, default=3600)
    p.add_argument("--warehouse-dir", default=None)
    p.add_argument("--refuse-tokens", action="store_true")
    p.add_argument("--async-statements", action="store_true",
                   default=os.environ.get("FHIRLAKE_DBX_TEST_ASYNC") == "1")
    p.add_argument("--warm", action="store_true", help="start Spark before serving")
    a = p.parse_args()
    st = State(a)
    if a.warm:
        st.session()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.st = st
    sys.stderr.write(f"dbx_server: listening on {a.port}\n")
    sys.stderr.flush()
    try:
        srv.serve_forever()
    finally:
        if st.spark is not None:
            st.spark.stop()


if __name__ == "__main__":
    main()
