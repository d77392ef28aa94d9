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

Instances outlive gureumd by design, so a test that forgets one would leave a supervisor, its
container and its cgroups on the host for ever. The fixture's teardown therefore force-deletes
every instance the daemon knows (through the API) before it stops the daemon, and cleanup()
(which every test that makes a Gureumd of its own calls in a `finally`, or uses `with`) then
asserts that nothing of that daemon remains: no gureum-supervisor whose --state-dir or
--run-dir is this daemon's, no cgroup of its parent /gureum-HASH in any hierarchy, no process
under its directories, no mount under them. What it finds is removed and the test fails, so a
leak is reported once instead of accumulating on the host.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sqlite3
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


# --- what a daemon leaves on the host --------------------------------------------------------

def cgroup_parent(run_dir):
    """The container driver's cgroup parent for a run directory, without the leading '/'
    (src/daemon/instance/container_config.c: container_cgroup_parent, FNV-1a of the real path)."""
    run_dir = os.path.realpath(run_dir)
    if run_dir == "/run/gureum":
        return "gureum"
    h = 2166136261
    for b in run_dir.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return f"gureum-{h:08x}"


def cgroup_dirs(parent):
    """The cgroup directories of `parent` (a name under the hierarchies' roots) in every
    hierarchy, deepest first."""
    found = []
    roots = ["/sys/fs/cgroup"] + [os.path.join("/sys/fs/cgroup", h) for h in sorted(os.listdir("/sys/fs/cgroup"))]
    for root in roots:
        top = os.path.join(root, parent)
        if os.path.isdir(top) and not os.path.islink(top):
            for base, _, _ in os.walk(top):
                found.append(base)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def cgroup_processes(dirs):
    pids = set()
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except OSError:
            pass
    return sorted(pids)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def supervisors_of(dirs):
    """Pids of gureum-supervisor processes (run or exec) whose --state-dir or --run-dir is in
    dirs (compared as given and as real paths)."""
    want = set(dirs) | {os.path.realpath(x) for x in dirs}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        argv = _cmdline(name)
        if not argv or os.path.basename(argv[0]) != "gureum-supervisor":
            continue
        for i, a in enumerate(argv[:-1]):
            if a in ("--state-dir", "--run-dir") and argv[i + 1] in want:
                found.append(int(name))
                break
    return found


def processes_under(dirs):
    """Pids whose root, cwd or executable lives under one of dirs."""
    roots = {os.path.realpath(x) for x in dirs}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        for link in ("root", "cwd", "exe"):
            try:
                target = os.readlink(f"/proc/{name}/{link}")
            except OSError:
                continue
            if any(target == r or target.startswith(r + "/") for r in roots):
                found.append(int(name))
                break
    return found


def mounts_under(dirs):
    roots = {os.path.realpath(x) for x in dirs}
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if any(mp == r or mp.startswith(r + "/") for r in roots):
                found.append(mp)
    return found


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def residue(state_dir, run_dir, extra_dirs=()):
    """What a (stopped) daemon with these directories left on the host, as readable lines."""
    dirs = [state_dir, run_dir, *extra_dirs]
    out = []
    sup = supervisors_of([state_dir, run_dir])
    if sup:
        out.append(f"gureum-supervisor processes still running: {sorted(sup)}")
    cg = cgroup_dirs(cgroup_parent(run_dir))
    if cg:
        out.append(f"cgroups left: {cg}")
    procs = sorted(set(processes_under(dirs)) | set(cgroup_processes(cg)))
    if procs:
        out.append(f"processes left under its directories or in its cgroups: "
                   f"{[(p, ' '.join(_cmdline(p))[:80]) for p in procs]}")
    mnt = mounts_under(dirs)
    if mnt:
        out.append(f"mounts left: {mnt}")
    return out


def remove_residue(state_dir, run_dir, extra_dirs=()):
    """Kills and removes what residue() reports (the test that leaked it has been judged)."""
    dirs = [state_dir, run_dir, *extra_dirs]
    parent = cgroup_parent(run_dir)
    for _ in range(50):
        pids = supervisors_of([state_dir, run_dir]) + processes_under(dirs) + \
            cgroup_processes(cgroup_dirs(parent))
        if not pids:
            break
        _kill_all(pids)
        time.sleep(0.1)
    for mp in sorted(set(mounts_under(dirs)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while cgroup_dirs(parent) and time.monotonic() < deadline:
        for d in cgroup_dirs(parent):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if cgroup_dirs(parent):
            time.sleep(0.1)


class Gureumd:
    def __init__(self, state_dir=None, run_dir=None, listen=None, args=(), env=None):
        self._tmp = tempfile.mkdtemp(prefix="gd-", dir="/tmp")  # short: unix socket paths
        self.state_dir = state_dir or os.path.join(self._tmp, "state")
        self.run_dir = run_dir or os.path.join(self._tmp, "run")
        self.listen = listen
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.was_ready = False        # it served once: it may have made instances
        self.stdout_path = os.path.join(self._tmp, "stdout")
        self.stderr_path = os.path.join(self._tmp, "stderr")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

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
                self.was_ready = True
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

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def delete_all_instances(self):
        """Force-deletes every instance the (running) daemon knows, through the API."""
        failures = []
        for url in self.get("/1.0/instances", expect=200)["metadata"]:
            st, _, env = self.request("DELETE", f"{url}?force=1")
            if st != 202:
                failures.append(f"DELETE {url}?force=1: HTTP {st}: {env}")
                continue
            op = self.wait_operation(env["operation"])
            if op["status_code"] != 200:
                failures.append(f"DELETE {url}?force=1: {op['err']}")
        left = self.get("/1.0/instances", expect=200)["metadata"]
        assert not failures and left == [], f"instances not deleted: {failures} {left}"

    def finish(self):
        """The fixture's teardown: every instance force-deleted, then a clean stop (status 0, no
        sanitizer report)."""
        if self.running():
            self.delete_all_instances()
        self.stop()

    def _db_instances(self):
        path = os.path.join(self.state_dir, "gureum.db")
        if not os.path.exists(path):
            return []
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                return [r[0] for r in db.execute("SELECT name FROM instances")]
        except sqlite3.Error:
            return ["(unreadable database)"]

    def cleanup(self):
        """Stops the daemon if it still runs (a failed start included) and checks that nothing of
        it remains on the host: instances it still knows are force-deleted first (through the
        API, restarting the daemon when a test left it stopped); anything left is removed and
        reported as a test failure."""
        problems = []
        try:
            if self.was_ready:
                if not self.running() and self._db_instances():
                    self.start()
                if self.running():
                    self.delete_all_instances()
        except Exception as e:  # noqa: BLE001: reported below, after the host is cleaned
            problems.append(f"deleting the instances failed: {e}")
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("gureumd did not stop on SIGTERM")
        if self.was_ready:
            extra = [self._tmp]
            left = residue(self.state_dir, self.run_dir, extra)
            deadline = time.monotonic() + 10  # generous: a supervisor may be ending its container
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left = residue(self.state_dir, self.run_dir, extra)
            if left:
                problems += left
                remove_residue(self.state_dir, self.run_dir, extra)
        shutil.rmtree(self._tmp, ignore_errors=True)
        assert not problems, "gureumd left things on the host (removed now):\n  " + "\n  ".join(problems)

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
    """A running gureumd in fresh directories. At teardown its instances are force-deleted, it is
    stopped (status 0, no sanitizer report) and nothing of it may remain on the host."""
    d = Gureumd()
    try:
        d.start()
        yield d
        d.finish()
    finally:
        d.cleanup()
