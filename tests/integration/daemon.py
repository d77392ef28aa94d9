"""gureumd test harness: start the daemon in temporary state/run directories and talk to it.

    from daemon import gureumd, Gureumd      # the fixture (pytest finds it when imported)

    def test_x(gureumd):
        env = gureumd.get("/1.0")                # the parsed envelope
        st, hdrs, env = gureumd.request("PUT", "/1.0", body=b"...")   # any request
        ws = gureumd.websocket("/1.0/events?type=operation")        # websocket.WebSocket
        op = gureumd.wait_operation(env["operation"])                 # the finished operation
        subprocess.run(gureumd.in_netns(["ping", "-c1", addr]))      # a client beside the daemon

The binary is GUREUMD, else $GUREUM_BUILD/src/daemon/gureumd (default build/). stop() sends
SIGTERM and asserts that the daemon exited with status 0 and that its stderr holds no sanitizer
report; the fixture does that at teardown, so every test also checks a clean shutdown.

Every gureumd runs in a network namespace of its own (NetNS: `ip netns add gt-RANDOM`, lo up,
gureumd exec'd by `nsenter --net=/run/netns/gt-RANDOM`, which changes nothing but the network
namespace: not `ip netns exec`, whose new mount namespace and remounted /sys would hide the
cgroup mounts), so its bridge, nftables table, dnsmasq and instance veths never touch the
machine's own namespace. The namespace is made at the first start() and kept across restarts
of the same Gureumd; gureumd.netns / gureumd.netns_path name it, gureumd.in_netns(argv) runs a
client in it (nsenter --net), and tls_request() connects from inside it (a socket made on a
thread that entered it: the test process itself never changes namespace). run_gureumd() runs a
one-shot gureumd (bad flags, --print-routes) in a throw-away namespace the same way.

Instances outlive gureumd by design, so a test that forgets one would leave a supervisor, its
container and its cgroups on the host for ever. The fixture's teardown therefore force-deletes
every instance the daemon knows (through the API) before it stops the daemon, and cleanup()
(which every test that makes a Gureumd of its own calls in a `finally`, or uses `with`) then
asserts that nothing of that daemon remains: no gureum-supervisor whose --state-dir or
--run-dir is this daemon's, no cgroup of its parent /gureum-HASH in any hierarchy, no process
under its directories, no mount under them (an instance's network namespace, bound at
RUN/netns/NAME, included), no file left in RUN/netns. Networks, like instances, outlive
gureumd: the dnsmasq of each network still in the database runs on after a clean stop, so
cleanup() kills every dnsmasq whose --pid-file is under this daemon's run directory and that
runs in its namespace without reporting it (one with such a pid file outside the namespace is
reported). Then no process at all may be left in the daemon's network namespace, which is
deleted (`ip netns delete`); /run/netns/gt-RANDOM must be gone. What it finds is removed and the
test fails, so a leak is reported once instead of accumulating on the host.
"""
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sqlite3
import tempfile
import threading
import time

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
GUREUMD = os.environ.get("GUREUMD", os.path.join(BUILD, "src", "daemon", "gureumd"))
TIMEOUT = float(os.environ.get("GUREUM_TEST_TIMEOUT", "60")) * (2 if os.environ.get("GUREUM_ASAN") else 1)
IP = shutil.which("ip") or "/usr/sbin/ip"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
NETNS_DIR = "/run/netns"  # where `ip netns add` binds its namespaces


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


# --- network namespaces ----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _ns_id(path):
    """(st_dev, st_ino) of a network namespace file (/run/netns/X, /proc/PID/ns/net); None if
    there is none (a gone process, a zombie)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class NetNS:
    """A network namespace of its own: `ip netns add gt-RANDOM` (bound at /run/netns/gt-RANDOM),
    lo up. Programs run in it through `nsenter --net=PATH -- argv` (argv()/run()), which enters
    the network namespace only and execs the program (its pid is the program's); sockets are
    made in it by socket()/create_connection(). delete() removes it (`ip netns delete`)."""

    def __init__(self, prefix="gt-"):
        self.name = prefix + secrets.token_hex(4)
        self.path = os.path.join(NETNS_DIR, self.name)
        r = subprocess.run([IP, "netns", "add", self.name], capture_output=True, text=True, timeout=TIMEOUT)
        if r.returncode != 0:
            raise RuntimeError(f"ip netns add {self.name}: {r.stderr.strip()}")
        try:
            self.id = _ns_id(self.path)
            self.run([IP, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=TIMEOUT)
        except BaseException:
            self.delete()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()
        return False

    def argv(self, argv):
        """argv run in this namespace (only the network namespace changes)."""
        return [NSENTER, f"--net={self.path}", "--", *argv]

    def run(self, argv, **kw):
        return subprocess.run(self.argv(argv), **kw)

    def exists(self):
        return os.path.exists(self.path)

    def contains(self, pid):
        return self.id is not None and _ns_id(f"/proc/{pid}/ns/net") == self.id

    def processes(self):
        """Pids of the processes (zombies aside) in this namespace."""
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and self.contains(p)]

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        """A socket of this namespace, made on a short-lived thread that entered it (a socket
        stays in the namespace it was made in; no thread of ours but that one changes it)."""
        out = {}

        def make():
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns({self.path}): {os.strerror(e)}")
                finally:
                    os.close(fd)
                out["sock"] = socket.socket(family, type, proto)
            except BaseException as e:  # noqa: BLE001: raised on the caller's thread
                out["error"] = e
        t = threading.Thread(target=make, name=f"netns-{self.name}")
        t.start()
        t.join()
        if "error" in out:
            raise out["error"]
        return out["sock"]

    def create_connection(self, address, timeout=None, source_address=None):
        """socket.create_connection() from inside this namespace (numeric addresses)."""
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = self.socket(family, socket.SOCK_STREAM)
        try:
            if timeout is not None:
                s.settimeout(timeout)
            if source_address:
                s.bind(source_address)
            s.connect((host, port))
        except BaseException:
            s.close()
            raise
        return s

    def delete(self):
        """`ip netns delete`: the name goes; the namespace ends with its last process."""
        if self.exists():
            subprocess.run([IP, "netns", "delete", self.name], capture_output=True, timeout=TIMEOUT)
        if os.path.exists(self.path):  # a bind that ip could not remove: do it by hand
            subprocess.run(["umount", "-l", self.path], capture_output=True)
            try:
                os.unlink(self.path)
            except OSError:
                pass


def run_gureumd(args, **kw):
    """subprocess.run() of a one-shot `gureumd ARGS` (bad flags, --print-routes) in a network
    namespace made for it and deleted afterwards, as every gureumd the tests start. Not root:
    run as is (no namespace can be made, and gureumd cannot change any network then)."""
    if os.geteuid() != 0:
        return subprocess.run([GUREUMD, *args], **kw)
    with NetNS() as ns:
        return ns.run([GUREUMD, *args], **kw)


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


def _under(path, roots):
    return any(path == r or path.startswith(r + "/") for r in roots)


def dnsmasq_pid_file(argv):
    """The --pid-file (-x) of a dnsmasq command line, or None."""
    if not argv or os.path.basename(argv[0]) != "dnsmasq":
        return None
    for i, a in enumerate(argv):
        if a.startswith("--pid-file="):
            return a.split("=", 1)[1]
        if a in ("--pid-file", "-x") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("-x") and len(a) > 2:
            return a[2:]
    return None


def dnsmasq_of(run_dir):
    """Pids of the dnsmasq processes whose --pid-file is under run_dir (given or real path):
    the dnsmasq of a daemon's networks (RUN/networks/NAME/dnsmasq.pid)."""
    roots = {run_dir, os.path.realpath(run_dir)}
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pf = dnsmasq_pid_file(_cmdline(name))
        if pf and _under(pf, roots):
            found.append(int(name))
    return found


def netns_files(run_dir):
    """What is left in RUN/netns (an instance's network namespace is bound at RUN/netns/NAME)."""
    try:
        return sorted(os.listdir(os.path.join(run_dir, "netns")))
    except OSError:
        return []


def _gone(pid, reap=False):
    """The process ended (a zombie). reap: a zombie child of ours is reaped (a subreaper adopts
    orphans such as a daemonized dnsmasq; never pass it for a pid a Popen still waits for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return True
    if fields[0] != "Z":
        return False
    if reap and int(fields[1]) == os.getpid():
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return True


def wait_gone(pids, timeout=TIMEOUT, reap=False):
    """Polls until every pid ended; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if not _gone(p, reap)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if not _gone(p, reap)]
    return left


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
    nsf = netns_files(run_dir)
    if nsf:
        out.append(f"network namespace files left in {os.path.join(run_dir, 'netns')}: {nsf}")
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
        # As /run is: others may pass through (the networks' dnsmasq, as nobody, reads its host
        # files under RUN; gureumd makes RUN 0711 itself).
        os.chmod(self._tmp, 0o711)
        self.state_dir = state_dir or os.path.join(self._tmp, "state")
        self.run_dir = run_dir or os.path.join(self._tmp, "run")
        self.listen = listen
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.proc = None
        self.ns = None                # its NetNS, made at the first start()
        self._netns_deleted = False   # by cleanup()
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

    # --- its network namespace -------------------------------------------------------------

    def ensure_netns(self):
        """Makes the daemon's network namespace now (start() does at the first start), for a
        test that prepares it before the daemon runs."""
        if self.ns is None:
            if self._netns_deleted:  # a new one would outlive the test: nobody deletes it
                raise RuntimeError(f"gureumd in {self._tmp} was cleaned up: its network namespace is gone")
            self.ns = NetNS()
        return self.ns

    @property
    def netns(self):
        """The name of the daemon's network namespace (gt-RANDOM), None before start()."""
        return self.ns.name if self.ns else None

    @property
    def netns_path(self):
        """/run/netns/gt-RANDOM, for nsenter --net= or setns; None before start()."""
        return self.ns.path if self.ns else None

    def in_netns(self, argv):
        """argv run beside the daemon, in its network namespace (nsenter --net)."""
        return self.ensure_netns().argv(argv)

    # --- process ---------------------------------------------------------------------------

    def command(self):
        cmd = [GUREUMD, "--state-dir", self.state_dir, "--run-dir", self.run_dir, "--log-level", "debug"]
        if self.listen:
            cmd += ["--listen", self.listen]
        return cmd + self.args

    def start(self, wait=True):
        """Starts gureumd in its network namespace (made at the first start, the same one at
        every restart); self.proc.pid is gureumd's (nsenter execs it)."""
        self._stdout_mark = len(self.stdout()) if os.path.exists(self.stdout_path) else 0
        argv = self.in_netns(self.command())
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=self.env,
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
        API, restarting the daemon when a test left it stopped); the dnsmasq of its networks are
        killed (expected: they outlive gureumd); then nothing may be left in its network
        namespace, which is deleted. Anything left is removed and reported as a test failure."""
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
        if self.ns is not None:
            problems += self._kill_dnsmasq()
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
        if self.ns is not None:
            problems += self._cleanup_netns()
        shutil.rmtree(self._tmp, ignore_errors=True)
        assert not problems, "gureumd left things on the host (removed now):\n  " + "\n  ".join(problems)

    def _kill_dnsmasq(self):
        """After the stop: the dnsmasq of its networks (pid file under its run directory, in its
        namespace) are expected to run still, and are killed silently. Returns the problems."""
        problems = []
        ns = self.ns
        dns = dnsmasq_of(self.run_dir)
        ours = [p for p in dns if ns.contains(p)]
        if self.was_ready:  # (a daemon that never served may share its run dir with another)
            outside = [p for p in dns if p not in ours]
            if outside:
                problems.append(f"dnsmasq with a pid file under {self.run_dir} outside the daemon's network "
                                f"namespace {ns.name}: {[(p, ' '.join(_cmdline(p))[:120]) for p in outside]}")
                _kill_all(outside)
                wait_gone(outside, reap=True)
        _kill_all(ours)
        left = wait_gone(ours, reap=True)
        if left:
            problems.append(f"dnsmasq did not die on SIGKILL: {left}")
        return problems

    def _cleanup_netns(self):
        """Last: anything still in its network namespace is a leak (killed, reported); the
        namespace is deleted. Returns the problems found."""
        problems = []
        ns = self.ns
        procs = ns.processes()
        if procs:
            problems.append(f"processes left in the daemon's network namespace {ns.name}: "
                            f"{[(p, ' '.join(_cmdline(p))[:80]) for p in procs]}")
            deadline = time.monotonic() + TIMEOUT
            while procs and time.monotonic() < deadline:  # (killed ones may have had children)
                _kill_all(procs)
                wait_gone(procs)
                procs = ns.processes()
        ns.delete()
        if os.path.exists(ns.path):
            problems.append(f"network namespace {ns.path} could not be deleted")
        self.ns = None
        self._netns_deleted = True
        return problems

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
        """A request over TLS to --listen, from inside the daemon's network namespace."""
        host, port = self.listen.rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=os.path.join(self.state_dir, "server.crt"))
        conn = http.client.HTTPSConnection(host.strip("[]"), int(port), context=ctx, timeout=timeout)
        conn._create_connection = self.ensure_netns().create_connection  # the daemon listens in its namespace
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
    """A port for --listen (every daemon has a namespace of its own: any port is free there)."""
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
