"""gureum-supervisor, driven directly (the container driver starts it the same way): exit codes
and the log, exit.json, restart policy with back-off, stop with a timeout, the console socket,
surviving its starter's SIGKILL, one supervisor per instance, start failures, and nothing left
behind (cgroups, mounts, processes, state) once it has ended.

Run:  /usr/bin/python3 -m pytest -q tests/integration/test_daemon_supervisor.py
      (GUREUM_BUILD=/work/wt-daemon/build-asan for the ASan build)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
SUPERVISOR = os.path.join(BUILD, "src", "daemon", "gureum-supervisor")
MKBUNDLE = os.path.join(REPO, "scripts", "mkbundle.sh")
# Per run: cgroups are host-wide and another run of this suite (the ASan build) may be going on.
CGROUP_PARENT = f"gureum-sup-test-{os.getpid()}"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402: the residue checks shared with the daemon's fixture


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.access(SUPERVISOR, os.X_OK):
        pytest.fail(f"{SUPERVISOR} not built (ninja -C build)", pytrace=False)
    d = tempfile.mkdtemp(prefix="gr-sup-img-", dir="/tmp")
    subprocess.run([MKBUNDLE, d], check=True)
    with open(os.path.join(d, "config.json")) as f:
        base = json.load(f)
    yield os.path.join(d, "rootfs"), base
    shutil.rmtree(d, ignore_errors=True)
    # The instances' parent cgroup (made by the container library, removed by nobody): every
    # instance is gone by now, so it must be empty.
    left = daemon.cgroup_dirs(CGROUP_PARENT)
    for c in left:
        try:
            os.rmdir(c)
        except OSError:
            pass
    assert [c for c in left if c.rstrip("/").split("/")[-1] != CGROUP_PARENT] == [], \
        f"instance cgroups left under /{CGROUP_PARENT}: {left}"
    assert daemon.cgroup_dirs(CGROUP_PARENT) == [], f"cannot remove /{CGROUP_PARENT}"


class Inst:
    def __init__(self, root, name, lower, base):
        self.root, self.name, self.lower = root, name, lower
        self.state = os.path.join(root, "state")
        self.run = os.path.join(root, "run")
        self.bundle = os.path.join(self.state, "instances", name)
        self.rundir = os.path.join(self.run, "instances", name)
        self.log = os.path.join(self.bundle, "logs", "console.log")
        self.config = json.loads(json.dumps(base))
        self.config["root"]["readonly"] = False
        self.config["hostname"] = name
        self.config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{name}"
        os.makedirs(os.path.join(self.bundle, "rootfs"))
        self.proc = None

    def write(self, args, terminal=False):
        self.config["process"]["args"] = args
        self.config["process"]["terminal"] = terminal
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(self.config, f)

    def start(self, restart="no", wait=True, extra=()):
        r, w = os.pipe()
        cmd = [SUPERVISOR, "run", "--state-dir", self.state, "--run-dir", self.run, "--name", self.name,
               "--lower", self.lower, "--restart", restart, "--ready-fd", str(w), *extra]
        self.proc = subprocess.Popen(cmd, pass_fds=(w,), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(w)
        with os.fdopen(r) as f:
            self.ready = f.readline()
        if wait:
            assert self.ready == "ok\n", (self.ready, self.proc.stderr.read() if self.proc.poll() is not None else "")
        return self.ready

    def pid(self):
        try:
            with open(os.path.join(self.rundir, "supervisor.pid")) as f:
                return int(f.read().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def exit_json(self):
        with open(os.path.join(self.rundir, "exit.json")) as f:
            return json.load(f)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, text, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            if os.path.exists(self.log) and text in self.log_text():
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in the log: {self.log_text()!r}")

    def wait_end(self, timeout=20):
        rc = self.proc.wait(timeout=timeout)
        self.proc.stderr.close()
        return rc

    def stop(self, timeout):
        with open(os.path.join(self.rundir, "stop.json"), "w") as f:
            json.dump({"timeout": timeout}, f)
        os.kill(self.pid(), signal.SIGTERM)

    def init_pid(self):
        with open(os.path.join(self.run, "containers", self.name, "state.json")) as f:
            return json.load(f)["pid"]


def alive(pid):
    """Whether pid is a live process (a zombie waiting for a slow reaper is not: orphans go to
    this machine's pid 1, which may reap late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going between open and read
        return False


def cgroup_dirs(name):
    found = []
    for base, dirs, _ in os.walk("/sys/fs/cgroup"):
        if base.endswith(f"/{CGROUP_PARENT}/{name}"):
            found.append(base)
        if base.count("/") > 5:
            dirs[:] = []
    return found


def assert_clean(inst):
    """Nothing of the instance left: state, sockets, cgroups, mounts, processes."""
    assert not os.path.exists(os.path.join(inst.run, "containers", inst.name))
    for f in ("supervisor.pid", "console.sock", "pty.sock", "stop.json"):
        assert not os.path.exists(os.path.join(inst.rundir, f)), f
    assert cgroup_dirs(inst.name) == []
    with open("/proc/self/mountinfo") as f:
        assert inst.root not in f.read()
    assert os.listdir(os.path.join(inst.bundle, "rootfs")) == []  # the overlay lived in its namespace


@pytest.fixture
def inst(image, request):
    lower, base = image
    root = tempfile.mkdtemp(prefix="gr-sup-", dir="/tmp")
    name = "t" + str(abs(hash(request.node.name)) % 10**8)
    i = Inst(root, name, lower, base)
    yield i
    # A supervisor the test left running (i.proc, or a --daemonize'd one) is stopped the way
    # gureumd stops one: stop.json, SIGTERM, and it must then end with nothing left behind.
    problems = []
    for pid in daemon.supervisors_of([i.state, i.run]):
        if pid == i.pid():
            i.stop(0)
    deadline = time.monotonic() + 20
    while daemon.supervisors_of([i.state, i.run]) and time.monotonic() < deadline:
        time.sleep(0.05)
    if i.proc:
        try:
            i.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            i.proc.kill()
            i.proc.wait()
            problems.append("the supervisor did not end on SIGTERM")
    subprocess.run([os.path.join(BUILD, "src", "runtime", "gureum-runtime"), "--root",
                    os.path.join(i.run, "containers"), "delete", "--force", name], capture_output=True)
    # Nothing of it may remain: supervisors, processes, cgroups, mounts.
    left = []
    deadline = time.monotonic() + 10
    while True:
        sup = daemon.supervisors_of([i.state, i.run])
        cg = [c for c in daemon.cgroup_dirs(CGROUP_PARENT) if c.endswith("/" + name)]
        procs = sorted(set(daemon.processes_under([root])) | set(daemon.cgroup_processes(cg)))
        mnt = daemon.mounts_under([root])
        left = [x for x in (sup and f"supervisors {sup}", cg and f"cgroups {cg}",
                            procs and f"processes {procs}", mnt and f"mounts {mnt}") if x]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        daemon._kill_all(sup + procs)
        for m in sorted(mnt, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        time.sleep(0.2)
        for c in cg:
            try:
                os.rmdir(c)
            except OSError:
                pass
    shutil.rmtree(root, ignore_errors=True)
    assert not (problems + left), f"left on the host (removed now): {problems + left}"


def test_exit_code_log_and_exit_json(inst):
    inst.write(["sh", "-c", "echo to-stdout; echo to-stderr >&2; echo written > /tmp/f; exit 3"])
    inst.start()
    assert inst.wait_end() == 0
    log = inst.log_text()
    assert "to-stdout\nto-stderr\n" in log
    e = inst.exit_json()
    assert e["exit_code"] == 3 and e["reason"] == "exited with 3" and e["restarts"] == 0
    assert not e["stopped"] and not e["restarting"]
    # Writes went to the instance's upper layer, never to the image.
    with open(os.path.join(inst.bundle, "upper", "tmp", "f")) as f:
        assert f.read() == "written\n"
    assert not os.path.exists(os.path.join(inst.lower, "tmp", "f"))
    assert_clean(inst)


def test_restart_on_failure_with_backoff(inst):
    inst.write(["sh", "-c", "echo run; exit 4"])
    t0 = time.time()
    inst.start(restart="on-failure:2")
    assert inst.wait_end() == 0
    elapsed = time.time() - t0
    log = inst.log_text()
    assert log.count("run\n") == 3
    assert "restart 1 in 100 ms" in log and "restart 2 in 200 ms" in log
    assert elapsed >= 0.3
    e = inst.exit_json()
    assert e["exit_code"] == 4 and e["restarts"] == 2 and not e["restarting"]
    assert_clean(inst)


def test_restart_on_failure_not_after_success(inst):
    inst.write(["true"])
    inst.start(restart="on-failure")
    assert inst.wait_end() == 0
    assert inst.exit_json()["restarts"] == 0


def test_restart_always_until_stopped(inst):
    inst.write(["sh", "-c", "echo tick; sleep 0.05"])
    inst.start(restart="always")
    inst.wait_log("restart 3 in")
    e = inst.exit_json()
    assert e["restarting"] and e["restarts"] >= 3
    inst.stop(5)
    assert inst.wait_end() == 0
    e = inst.exit_json()
    assert e["stopped"] and not e["restarting"]
    assert_clean(inst)


def test_stop_graceful(inst):
    inst.write(["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo up; while :; do sleep 0.1; done"])
    inst.start()
    inst.wait_log("up")
    t0 = time.time()
    inst.stop(30)
    assert inst.wait_end() == 0
    assert time.time() - t0 < 25  # it ended on SIGTERM, not at the 30 s timeout
    assert "got-term" in inst.log_text()
    e = inst.exit_json()
    assert e["reason"] == "stopped: exited with 0" and e["stopped"]
    assert_clean(inst)


def test_stop_timeout_kills(inst):
    # A shell as the init (pid 1) ignores SIGTERM: the timeout then SIGKILL.
    inst.write(["sh", "-c", "sleep 1000 & sleep 1000"])
    inst.start(restart="always")
    init = inst.init_pid()
    assert cgroup_dirs(inst.name)  # (so that assert_clean's check means something)
    t0 = time.time()
    inst.stop(1)
    assert inst.wait_end() == 0
    took = time.time() - t0
    assert took >= 0.9, took  # not before the timeout (no upper bound: the machine may be loaded)
    e = inst.exit_json()
    assert e["reason"] == "stopped: killed by SIGKILL" and e["exit_code"] == 137
    assert e["restarts"] == 0  # a stop never restarts
    assert not alive(init)
    assert_clean(inst)


def test_console_socket(inst):
    inst.write(["sh"], terminal=True)
    inst.start()
    path = os.path.join(inst.rundir, "console.sock")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(5)
    s.sendall(b"echo hi-$((6*7))\n")
    got = b""
    end = time.time() + 5
    while b"hi-42" not in got and time.time() < end:
        got += s.recv(4096)
    assert b"hi-42" in got
    s.close()
    inst.wait_log("hi-42")  # the console's output is in the log too
    inst.stop(0)
    assert inst.wait_end() == 0
    assert_clean(inst)


def test_survives_its_starters_sigkill(inst):
    inst.write(["sh", "-c", "while :; do echo alive; sleep 0.1; done"])
    # The starter double-forks it (--daemonize) then gets SIGKILL, as gureumd may.
    starter = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, time
r, w = os.pipe()
subprocess.run({[SUPERVISOR, "run", "--state-dir", inst.state, "--run-dir", inst.run, "--name", inst.name,
                 "--lower", inst.lower, "--ready-fd"]!r} + [str(w), "--daemonize"], pass_fds=(w,), check=True)
os.close(w)
print(os.read(r, 100).decode(), end="", flush=True)
time.sleep(1000)
"""], stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert starter.stdout.readline() == "ok\n"
    sup = inst.pid()
    os.killpg(starter.pid, signal.SIGKILL)
    starter.wait()
    time.sleep(0.3)
    assert alive(sup)
    with open(f"/proc/{sup}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) != starter.pid           # not its child
    assert int(fields[3]) == sup                    # its own session
    n = inst.log_text().count("alive")
    time.sleep(0.3)
    assert inst.log_text().count("alive") > n       # still relaying
    with open(os.path.join(inst.rundir, "stop.json"), "w") as f:
        json.dump({"timeout": 0}, f)
    os.kill(sup, signal.SIGTERM)
    end = time.time() + 60
    while alive(sup) and time.time() < end:
        time.sleep(0.02)
    assert not alive(sup)
    assert_clean(inst)


def test_one_supervisor_per_instance(inst):
    inst.write(["sleep", "1000"])
    inst.start()
    first = inst.proc
    second = Inst.__new__(Inst)
    second.__dict__.update(inst.__dict__)
    ready = second.start(wait=False)
    assert ready.startswith("error: ") and "already has a running supervisor" in ready
    assert second.wait_end() == 1
    assert first.poll() is None and inst.pid() == first.pid  # the first one's files are intact
    inst.proc = first
    inst.stop(0)
    assert inst.wait_end() == 0
    assert_clean(inst)


def test_start_failure_is_reported(inst):
    inst.write(["/nonexistent-binary"])
    ready = inst.start(restart="always", wait=False)
    assert ready.startswith("error: ") and "nonexistent-binary" in ready
    assert inst.wait_end() == 1
    e = inst.exit_json()
    assert e["exit_code"] == -1 and e["reason"].startswith("failed to start:")
    assert_clean(inst)


def test_log_rotation(inst):
    inst.write(["sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"])
    inst.start(extra=("--log-max", "4096", "--log-files", "3"))
    assert inst.wait_end() == 0
    sizes = [os.path.getsize(inst.log + s) for s in ("", ".1", ".2")]
    assert all(s <= 4096 for s in sizes) and sizes[1] == 4096 and sizes[2] == 4096
    assert not os.path.exists(inst.log + ".3")
    with open(inst.log + ".2") as a, open(inst.log + ".1") as b:
        text = a.read() + b.read() + inst.log_text()
    assert "line-399-" in text and "line-0-" not in text  # the oldest went


def test_bad_arguments():
    r = subprocess.run([SUPERVISOR, "run", "--state-dir", "/tmp", "--run-dir", "/tmp", "--name", "Bad_Name"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Bad_Name" in r.stderr
    r = subprocess.run([SUPERVISOR, "run", "--state-dir", "/tmp", "--run-dir", "/tmp", "--name", "a",
                        "--restart", "sometimes"], capture_output=True, text=True)
    assert r.returncode == 2 and "sometimes" in r.stderr
    r = subprocess.run([SUPERVISOR, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "frobnicate" in r.stderr
