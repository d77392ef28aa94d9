"""gureumd test harness: start the daemon in temporary state/run directories and talk to it.

    from daemon import gureumd, Gureumd      # the fixture (pytest finds it when imported)

    def test_x(gureumd):
        env = gureumd.get("/1.0")                # the parsed envelope
        st, hdrs, env = gureumd.request("PUT", "/1.0", body=b"...")   # any request
        ws = gureumd.websocket("/1.0/events?type=operation")        # websocket.WebSocket
        op = gureumd.wait_operation(env["operation"])                 # the finished operation

The binary is GUREUMD, else $GUREUM_BUILD/src/daemon/gureumd (default build/). stop() sends
SIGTERM and asserts that the daemon exited with status 0 and that its stderr holds no sanitizer
report; the fixture does that at teardown, so every test also checks a clean shutdown.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
GUREUMD = os.environ.get("GUREUMD", os.path.join(BUILD, "src", "daemon", "gureumd"))
TIMEOUT = float(os.environ.get("GUREUM_TEST_TIMEOUT", "60")) * (2 if os.environ.get("GUREUM_ASAN") else 1)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path, timeout=TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def _decode(resp_headers, data):
    ctype = resp_headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return json.loads(data)
    return data


class Gureumd:
    def __init__(self, state_dir=None, run_dir=None, listen=None, args=(), env=None):
        self._tmp = tempfile.mkdtemp(prefix="gd-", dir="/tmp")  # short: unix socket paths
        self.state_dir = state_dir or os.path.join(self._tmp, "state")
        self.run_dir = run_dir or os.path.join(self._tmp, "run")
        self.listen = listen
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.stdout_path = os.path.join(self._tmp, "stdout")
        self.stderr_path = os.path.join(self._tmp, "stderr")

    @property
    def socket_path(self):
        return os.path.join(self.run_dir, "gureum.sock")

    # --- process ---------------------------------------------------------------------------

    def command(self):
        cmd = [GUREUMD, "--state-dir", self.state_dir, "--run-dir", self.run_dir, "--log-level", "debug"]
        if self.listen:
            cmd += ["--listen", self.listen]
        return cmd + self.args

    def start(self, wait=True):
        self._stdout_mark = len(self.stdout()) if os.path.exists(self.stdout_path) else 0
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err, env=self.env,
                                         stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"gureumd exited with {self.proc.returncode}: {self.stderr()}")
            if "gureumd: ready" in self.stdout()[self._stdout_mark:]:
                return
            time.sleep(0.01)
        raise AssertionError(f"gureumd not ready after {timeout}s: {self.stderr()}")

    def stdout(self):
        with open(self.stdout_path, errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def check_stderr_clean(self):
        err = self.stderr()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert marker not in err, f"sanitizer report in gureumd's stderr:\n{err}"

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT, expect_status=0):
        if not self.proc or self.proc.poll() is not None:
            rc = self.proc.returncode if self.proc else None
        else:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"gureumd did not stop within {timeout}s after {sig!r}: {self.stderr()}")
        self.check_stderr_clean()
        if expect_status is not None:
            assert rc == expect_status, f"gureumd exited with {rc}: {self.stderr()}"
        return rc

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # --- HTTP ------------------------------------------------------------------------------

    def connection(self, timeout=TIMEOUT):
        return UnixHTTPConnection(self.socket_path, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=TIMEOUT):
        """Returns (status, headers as a lower-case dict, body: parsed JSON or bytes)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return r.status, hdrs, _decode(hdrs, data)
        finally:
            conn.close()

    def _call(self, method, path, body=None, expect=None, **kw):
        st, _, env = self.request(method, path, body=body, **kw)
        if expect is not None:
            assert st == expect, f"{method} {path}: HTTP {st}, expected {expect}: {env}"
        return env

    def get(self, path, **kw):
        return self._call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self._call("POST", path, body=body if body is not None else {}, **kw)

    def put(self, path, body=None, **kw):
        return self._call("PUT", path, body=body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self._call("DELETE", path, **kw)

    def wait_operation(self, op_url, timeout=TIMEOUT):
        """GET .../wait until the operation ends; returns the operation object."""
        env = self.get(f"{op_url}/wait?timeout={timeout}", expect=200, timeout=timeout + 5)
        op = env["metadata"]
        assert op["status_code"] >= 200, f"operation still running after {timeout}s: {op}"
        return op

    def token(self, description="test"):
        env = self.post("/1.0/tokens", {"description": description}, expect=200)
        return env["metadata"]["token"]

    # --- WebSocket -------------------------------------------------------------------------

    def websocket(self, path, timeout=TIMEOUT):
        """A websocket.WebSocket (python3-websocket) connected over the unix socket."""
        import websocket  # python3-websocket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.socket_path)
        return websocket.create_connection("ws://localhost" + path, socket=s, timeout=timeout)

    # --- TLS -------------------------------------------------------------------------------

    def tls_request(self, method, path, token=None, body=None, timeout=TIMEOUT):
        host, port = self.listen.rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=os.path.join(self.state_dir, "server.crt"))
        conn = http.client.HTTPSConnection(host.strip("[]"), int(port), context=ctx, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            return r.status, hdrs, _decode(hdrs, data)
        finally:
            conn.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def gureumd():
    """A running gureumd in fresh directories; stopped (and checked) at teardown."""
    d = Gureumd().start()
    try:
        yield d
        d.stop()
    finally:
        d.cleanup()
