"""Shared pytest fixtures: a real `build/fhirlake serve` on a free port with a temp data dir.

Fixtures (reuse them in any tests/integration/test_*.py):
  fhir_server         function-scoped FhirServer (fresh data dir per test)
  fhir_server_module  module-scoped FhirServer (one per test file)
  fhir_server_factory function-scoped factory: fhir_server_factory(data_dir=None, args=())
                      starts more servers (all stopped at the end of the test)
FhirServer: .base ("http://127.0.0.1:PORT/fhir"), .url(path), .data_dir, .port,
            .stop() (SIGTERM, graceful), .kill9(), .restart() (same data dir, new port),
            .log() (what the server printed so far).
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# FHIRLAKE_BIN runs the suite against another build (e.g. an ASan one).
BIN = os.environ.get("FHIRLAKE_BIN") or os.path.join(ROOT, "build", "fhirlake")


def pytest_configure(config):
    # A private base temp dir per session: pytest's default /tmp/pytest-of-USER/pytest-N
    # retention deletes older sessions' dirs, which breaks runs that overlap in time.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="fhirlake-pytest-")
        config._fhirlake_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    d = getattr(config, "_fhirlake_basetemp", None)
    if d:
        shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FhirServer:
    def __init__(self, data_dir, args=()):
        self.data_dir = str(data_dir)
        self.args = list(args)
        self.proc = None
        self.port = None
        self._logf = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}/fhir"

    def url(self, path=""):
        return self.base + ("/" + path.lstrip("/") if path else "")

    def start(self, timeout=15):
        assert os.path.exists(BIN), f"{BIN} missing: run make first"
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self._logf = open(os.path.join(self.data_dir, f"server-{self.port}.log"), "w+")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", str(self.port), "--data", self.data_dir] + self.args,
            stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(self.url("metadata"), timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill9()
        raise RuntimeError("server did not come up: " + self.log())

    def log(self):
        if not self._logf:
            return ""
        self._logf.flush()
        with open(self._logf.name) as f:
            return f.read()

    def stop(self, timeout=15):
        """Graceful stop (SIGTERM); returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        self.stop()
        if self._logf:
            self._logf.close()


@pytest.fixture
def fhir_server(tmp_path):
    srv = FhirServer(tmp_path / "data").start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def fhir_server_module(tmp_path_factory):
    srv = FhirServer(tmp_path_factory.mktemp("fhirlake") / "data").start()
    yield srv
    srv.close()


@pytest.fixture
def fhir_server_factory(tmp_path):
    made = []

    def make(data_dir=None, args=()):
        srv = FhirServer(data_dir or (tmp_path / f"data{len(made)}"), args).start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


# A Spark session with Delta (module scope; every in-process session asks for the same jars,
# see delta_helpers.spark_session). Modules that need another session define their own.
@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    pytest.importorskip("delta")
    os.environ.setdefault("TZ", "UTC")
    from delta_helpers import spark_session
    s = spark_session()
    yield s
    s.stop()
