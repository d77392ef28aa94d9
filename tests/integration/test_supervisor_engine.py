"""gureum-supervisor run-engine: a VM engine process under the supervision containers get, with
busybox scripts as fake engines (the VM driver runs QEMU the same way): the console pty (output to
the log and to a console.sock client, client input to the engine), exit.json with the engine's
exit code, the restart policy, the stop through QMP (a fake QMP server here) or SIGTERM, SIGKILL
to the engine's process group after the stop timeout, --daemonize and PR_SET_PDEATHSIG, an engine
that cannot be run, and nothing left behind.

Run:  /usr/bin/python3 -m pytest -q tests/integration/test_supervisor_engine.py
      GUREUM_BUILD=/tmp/build-asan GUREUM_ASAN=1 ASAN_OPTIONS=detect_leaks=0 ... for the ASan build

Every process a test starts carries GR_ENGINE_TEST=<its directory> in its environment (the
supervisor passes its environment to the engine, the engine to its children), so the fixture
finds whatever a test left running, kills it and fails the test.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402: supervisors_of, wait_gone
import helpers  # noqa: E402: wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
SUPERVISOR = os.path.join(BUILD, "src", "daemon", "gureum-supervisor")
BUSYBOX = "/bin/busybox"
TIMEOUT = helpers.TIMEOUT
MARK = "GR_ENGINE_TEST"
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def marked_processes(root):
    """Live processes whose environment carries this test's mark."""
    needle = f"{MARK}={root}".encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env and helpers.pid_alive(int(name)):
            found.append(int(name))
    return found


def stat_fields(pid):
    """/proc/PID/stat after the command: [state, ppid, pgrp, session, tty_nr, ...]."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def group_members(pgid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if int(stat_fields(name)[2]) == pgid and helpers.pid_alive(int(name)):
                    out.append(int(name))
            except (OSError, IndexError):
                pass
    return out


class Engine:
    """One instance: its directories, its supervisor (self.proc) and its fake engine scripts."""

    def __init__(self, root, name):
        self.root, self.name = root, name
        self.state = os.path.join(root, "state")
        self.run = os.path.join(root, "run")
        self.rundir = os.path.join(self.run, "instances", name)
        self.log = os.path.join(self.state, "instances", name, "logs", "console.log")
        self.env = dict(os.environ, **{MARK: root})
        self.proc = None
        self.ready = None

    def script(self, text, name="engine.sh"):
        """A fake engine: busybox sh running text (argv: absolute paths, no shell lookup)."""
        path = os.path.join(self.root, name)
        with open(path, "w") as f:
            f.write(text)
        return [BUSYBOX, "sh", path]

    def command(self, argv, restart="no", qmp=None, extra=(), ready_fd=None):
        cmd = [SUPERVISOR, "run-engine", "--state-dir", self.state, "--run-dir", self.run, "--name", self.name,
               "--restart", restart, *extra]
        if ready_fd is not None:
            cmd += ["--ready-fd", str(ready_fd)]
        if qmp:
            cmd += ["--qmp", qmp]
        return cmd + ["--", *argv]

    def start(self, argv, restart="no", qmp=None, wait=True, extra=()):
        r, w = os.pipe()
        self.proc = subprocess.Popen(self.command(argv, restart, qmp, extra, ready_fd=w), pass_fds=(w,),
                                     stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        os.close(w)
        with os.fdopen(r) as f:
            self.ready = f.readline()
        if wait:
            assert self.ready == "ok\n", (self.ready, self.proc.stderr.read() if self.proc.poll() is not None else "")
        return self.ready

    def wait_end(self):
        """The supervisor's exit status; its stderr must hold no sanitizer report."""
        rc = self.proc.wait(timeout=TIMEOUT)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        assert not any(s in err for s in SANITIZER_REPORTS), err
        return rc

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
        """The log as it is (bytes decoded: text mode would turn "\r\n" into "\n")."""
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text):
        helpers.wait_for(lambda: text in self.log_text(), what=f"{text!r} in {self.log}")
        return self.log_text()

    def stop(self, timeout):
        with open(os.path.join(self.rundir, "stop.json"), "w") as f:
            json.dump({"timeout": timeout}, f)
        os.kill(self.pid(), signal.SIGTERM)

    def engine_pid(self):
        """The engine: the supervisor's child (its only one while a run goes on)."""
        sup = self.pid()

        def child():
            try:
                with open(f"/proc/{sup}/task/{sup}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                return None
            return kids[0] if len(kids) == 1 else None
        return helpers.wait_for(child, what="the engine process")


def assert_clean(e):
    """The supervisor's files are gone (exit.json stays: it is the record) and nothing runs."""
    for f in ("supervisor.pid", "console.sock", "stop.json"):
        assert not os.path.exists(os.path.join(e.rundir, f)), f
    left = helpers.wait_for(lambda: not marked_processes(e.root) and "none", what="the processes to end")
    assert left == "none"


@pytest.fixture
def eng(request):
    if not os.access(SUPERVISOR, os.X_OK):
        pytest.fail(f"{SUPERVISOR} not built (ninja -C build)", pytrace=False)
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip(f"{BUSYBOX} (busybox-static) is missing")
    root = tempfile.mkdtemp(prefix="gr-eng-", dir="/tmp")
    e = Engine(root, "v" + str(abs(hash(request.node.name)) % 10**8))
    yield e
    # A supervisor the test left running is stopped the way gureumd stops one.
    problems = []
    for pid in daemon.supervisors_of([e.state, e.run]):
        try:
            with open(os.path.join(e.rundir, "stop.json"), "w") as f:
                json.dump({"timeout": 0}, f)
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    if daemon.wait_gone(daemon.supervisors_of([e.state, e.run])):
        problems.append("a supervisor did not end on SIGTERM")
    if e.proc and e.proc.poll() is None:
        try:
            e.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append("the supervisor did not end")
    left = daemon.wait_gone(marked_processes(root))
    if left:
        problems.append(f"processes left: {[(p, ' '.join(daemon._cmdline(p))) for p in left]}")
        daemon._kill_all(left)
    if e.proc:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait()
        if e.proc.stderr and not e.proc.stderr.closed:
            e.proc.stderr.close()
    shutil.rmtree(root, ignore_errors=True)
    assert not problems, f"left on the host (removed now): {problems}"


class FakeQMP:
    """A QMP server on a unix socket, as QEMU's `-qmp unix:PATH,server=on,wait=off`: greeting,
    qmp_capabilities, then commands; on system_powerdown it calls on_powerdown (the fake
    guest reacting to the ACPI power button) unless that is None."""

    GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""},
                        "capabilities": ["oob"]}}

    def __init__(self, path, on_powerdown=None):
        self.path, self.on_powerdown = path, on_powerdown
        self.got = []
        self.errors = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _send(conn, obj):
        conn.sendall(json.dumps(obj).encode() + b"\r\n")

    def _serve(self):
        import select
        try:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.sock not in r:
                return
            conn, _ = self.sock.accept()
            with conn:
                self._send(conn, self.GREETING)
                caps = False
                for line in conn.makefile("rb"):
                    msg = json.loads(line)
                    cmd = msg.get("execute")
                    self.got.append(cmd)
                    if cmd == "qmp_capabilities":
                        caps = True
                        self._send(conn, {"return": {}})
                    elif not caps:
                        self._send(conn, {"error": {"class": "CommandNotFound", "desc": "capabilities first"}})
                    elif cmd == "system_powerdown":
                        self._send(conn, {"return": {}})
                        try:  # the client may be gone once it has its answer, as QEMU allows
                            self._send(conn, {"timestamp": {"seconds": 0, "microseconds": 0},
                                              "event": "POWERDOWN"})
                        except (BrokenPipeError, ConnectionResetError):
                            pass
                        if self.on_powerdown:
                            self.on_powerdown()
                    else:
                        self._send(conn, {"error": {"class": "CommandNotFound", "desc": f"{cmd}?"}})
        except ConnectionResetError:
            # The client may close once it has its answer (as QEMU allows); the POWERDOWN
            # event sent after that makes the next read fail with a reset, not an EOF.
            if self.got[-1:] != ["system_powerdown"]:
                self.errors.append("connection reset before system_powerdown")
        except Exception as ex:  # reported by close()
            self.errors.append(repr(ex))

    def close(self):
        os.write(self.stop_w, b"x")
        self.thread.join(timeout=TIMEOUT)
        self.sock.close()
        os.close(self.stop_r)
        os.close(self.stop_w)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        assert not self.thread.is_alive() and not self.errors, self.errors


def console(e):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(e.rundir, "console.sock"))
    s.settimeout(TIMEOUT)
    return s


def recv_rest(s):
    """What the console still sends until it is closed."""
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return got
        got += chunk


def recv_until(s, text):
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while text not in got:
        assert time.monotonic() < deadline, got
        chunk = s.recv(4096)
        assert chunk, f"console closed before {text!r}: {got!r}"
        got += chunk
    return got


# ------------------------------------------------------------------------------------------------


def test_console_input_output_and_exit_code(eng):
    eng.start(eng.script('echo booted; read x; echo "got $x"; exit 3\n'))
    path = os.path.join(eng.rundir, "console.sock")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    eng.wait_log("booted\n")
    s = console(eng)
    s.sendall(b"hello\n")
    got = recv_until(s, b"got hello")
    assert b"hello\n" not in got.replace(b"got hello", b"")  # a raw pty: no echo of the input
    assert eng.wait_end() == 0
    assert recv_rest(s).strip() == b""  # the console closes with the supervisor
    s.close()
    log = eng.log_text()
    assert "booted\ngot hello\n" in log  # the pty adds no "\r"
    assert "[gureum-supervisor] exited with 3" in log
    e = eng.exit_json()
    assert e["exit_code"] == 3 and e["reason"] == "exited with 3" and e["signal"] == 0
    assert not e["stopped"] and not e["restarting"] and e["restarts"] == 0
    assert_clean(eng)


def test_engine_on_its_pty_in_its_own_session(eng):
    # The engine's stdio is the pty, which is its controlling terminal; it leads its own session
    # and process group; the pty is raw (^C reaches the engine as a byte, not SIGINT) and stays
    # without output translation when the engine turns OPOST on (QEMU's stdio backend does): the
    # guest's "\r\n" stays one line end.
    eng.start(eng.script('tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys\n'
                         'stty -a | tr " " "\\n" | grep -qx -- -icanon && echo raw\n'
                         'stty opost; printf "guest-line-1\\r\\nguest-line-2\\r\\n"\n'
                         'echo ready; read -r x; echo "code $(printf %s "$x" | od -An -tx1)"; exit 0\n'))
    engine = eng.engine_pid()
    f = stat_fields(engine)
    assert int(f[1]) == eng.pid()                         # the supervisor's child
    assert int(f[2]) == engine and int(f[3]) == engine     # its own group and session
    assert int(f[4]) != 0                                  # with a controlling terminal
    eng.wait_log("ready\n")
    s = console(eng)
    s.sendall(b"\x03\n")
    recv_until(s, b"code  03")
    s.close()
    assert eng.wait_end() == 0
    log = eng.log_text()
    assert "/dev/pts/" in log and "all-ttys\n" in log and "raw\n" in log
    assert "guest-line-1\nguest-line-2\n" in log
    assert eng.exit_json()["exit_code"] == 0
    assert_clean(eng)


def test_newest_console_client_wins(eng):
    eng.start(eng.script('echo ready; while read -r x; do echo "echo:$x"; [ "$x" = quit ] && exit 0; done\n'))
    eng.wait_log("ready\n")
    a = console(eng)
    a.sendall(b"one\n")
    recv_until(a, b"echo:one")
    b = console(eng)
    b.sendall(b"two\n")
    recv_until(b, b"echo:two")
    assert b"two" not in recv_rest(a)  # the older client was let go
    b.sendall(b"quit\n")
    assert eng.wait_end() == 0
    a.close()
    b.close()
    assert "echo:one\necho:two\necho:quit\n" in eng.log_text()
    assert_clean(eng)


def test_restart_on_failure(eng):
    eng.start(eng.script("echo run; exit 4\n"), restart="on-failure:2")
    assert eng.wait_end() == 0
    log = eng.log_text()
    assert log.count("run\n") == 3
    assert "restart 1 in 100 ms" in log and "restart 2 in 200 ms" in log
    e = eng.exit_json()
    assert e["exit_code"] == 4 and e["restarts"] == 2 and not e["restarting"] and not e["stopped"]
    assert_clean(eng)


def test_restart_on_failure_not_after_success(eng):
    eng.start(eng.script("echo run; exit 0\n"), restart="on-failure")
    assert eng.wait_end() == 0
    assert eng.log_text().count("run\n") == 1
    assert eng.exit_json()["restarts"] == 0
    assert_clean(eng)


def test_group_leftovers_are_killed_when_the_engine_exits(eng):
    eng.start(eng.script('sleep 1000 & echo "bg $!"; exit 5\n'))
    assert eng.wait_end() == 0
    bg = int(eng.wait_log("bg ").split("bg ", 1)[1].split()[0])
    assert not helpers.pid_alive(bg)
    assert eng.exit_json()["exit_code"] == 5
    assert_clean(eng)


def test_stop_through_qmp(eng):
    fifo = os.path.join(eng.root, "acpi")
    os.mkfifo(fifo)

    def press_power_button():  # what the guest sees: its power button, then it shuts down
        with open(fifo, "w") as f:
            f.write("acpi\n")
    qmp = FakeQMP(os.path.join(eng.root, "qmp.sock"), on_powerdown=press_power_button)
    try:
        eng.start(eng.script(f"trap 'echo got-term; exit 9' TERM\necho booted; read x < {fifo}\n"
                             f'echo "powered down by $x"; exit 0\n'), restart="always",
                  qmp=qmp.path)
        eng.wait_log("booted\n")
        eng.stop(60)
        assert eng.wait_end() == 0
    finally:
        qmp.close()
    assert qmp.got == ["qmp_capabilities", "system_powerdown"]
    log = eng.log_text()
    assert "system_powerdown through QMP, SIGKILL after 60 s" in log
    assert "QMP: system_powerdown accepted" in log
    assert "powered down by acpi\n" in log
    assert "got-term" not in log and "stop timeout" not in log
    e = eng.exit_json()
    assert e["reason"] == "stopped: exited with 0" and e["stopped"] and e["exit_code"] == 0
    assert e["restarts"] == 0 and not e["restarting"]  # a stop never restarts
    assert_clean(eng)


@pytest.mark.parametrize("qmp", [None, "missing", "refusing"])
def test_stop_with_sigterm(eng, qmp):
    # Without --qmp, or when QMP fails (no socket; a server that refuses the command), the
    # engine's process group gets SIGTERM.
    server = None
    path = None
    if qmp == "missing":
        path = os.path.join(eng.root, "no-such-qmp.sock")
    elif qmp == "refusing":
        path = os.path.join(eng.root, "qmp.sock")
        server = RefusingQMP(path)
    try:
        eng.start(eng.script("trap 'echo got-term; exit 0' TERM\necho up\nwhile :; do sleep 1; done\n"),
                  qmp=path)
        eng.wait_log("up\n")
        eng.stop(60)
        assert eng.wait_end() == 0
    finally:
        if server:
            server.close()
    log = eng.log_text()
    assert "got-term\n" in log and "stop timeout" not in log
    if qmp is None:
        assert "stopping: SIGTERM, SIGKILL after 60 s" in log
    elif qmp == "missing":
        assert f"cannot connect to QMP at {path}" in log and "SIGTERM instead" in log
    else:
        assert "qmp_capabilities refused: not today" in log and "SIGTERM instead" in log
    e = eng.exit_json()
    assert e["reason"] == "stopped: exited with 0" and e["stopped"]
    assert_clean(eng)


class RefusingQMP(FakeQMP):
    """Greets, then answers everything with an error."""

    def _serve(self):
        import select
        try:
            r, _, _ = select.select([self.sock, self.stop_r], [], [])
            if self.sock not in r:
                return
            conn, _ = self.sock.accept()
            with conn:
                self._send(conn, self.GREETING)
                for line in conn.makefile("rb"):
                    self.got.append(json.loads(line).get("execute"))
                    self._send(conn, {"error": {"class": "GenericError", "desc": "not today"}})
        except Exception as ex:
            self.errors.append(repr(ex))


@pytest.mark.parametrize("with_qmp", [True, False])
def test_stop_timeout_kills_the_group(eng, with_qmp):
    # An engine (and its child) that ignores everything: SIGKILL to its group at the timeout.
    qmp = FakeQMP(os.path.join(eng.root, "qmp.sock")) if with_qmp else None
    try:
        eng.start(eng.script('trap "" TERM INT HUP\necho "up $$"\nwhile :; do sleep 1; done\n'),
                  restart="always", qmp=qmp.path if qmp else None)
        engine = int(eng.wait_log("up ").split("up ", 1)[1].split()[0])
        helpers.wait_for(lambda: len(group_members(engine)) >= 2, what="the engine's sleep")
        members = group_members(engine)
        t0 = time.monotonic()
        eng.stop(1)
        assert eng.wait_end() == 0
        took = time.monotonic() - t0
    finally:
        if qmp:
            qmp.close()
    assert took >= 0.9, took  # not before the timeout (no upper bound: the machine may be loaded)
    if qmp:
        assert qmp.got == ["qmp_capabilities", "system_powerdown"]
    log = eng.log_text()
    assert "stop timeout: killing the engine" in log
    e = eng.exit_json()
    assert e["reason"] == "stopped: killed by SIGKILL" and e["exit_code"] == 137 and e["signal"] == 9
    assert e["restarts"] == 0 and e["stopped"]
    assert not [p for p in members if helpers.pid_alive(p)]
    assert_clean(eng)


def test_stop_timeout_zero_kills_at_once(eng):
    eng.start(eng.script('trap "" TERM\necho up\nwhile :; do sleep 1; done\n'))
    eng.wait_log("up\n")
    eng.stop(0)
    assert eng.wait_end() == 0
    assert "stopping: killing the engine" in eng.log_text()
    assert eng.exit_json()["reason"] == "stopped: killed by SIGKILL"
    assert_clean(eng)


@pytest.mark.parametrize("kind", ["missing", "not-executable", "directory"])
def test_engine_that_cannot_run(eng, kind):
    if kind == "missing":
        path, why = os.path.join(eng.root, "no-such-engine"), "No such file or directory"
    elif kind == "not-executable":
        path, why = os.path.join(eng.root, "engine.bin"), "Permission denied"
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o644)
    else:
        path, why = eng.root, "Permission denied"
    ready = eng.start([path, "-M", "microvm"], restart="always", wait=False)
    assert ready == f"error: cannot run the engine {path}: {why}\n"
    assert eng.wait_end() == 1
    e = eng.exit_json()
    assert e["exit_code"] == -1 and e["reason"] == f"failed to start: cannot run the engine {path}: {why}"
    assert f"failed to start: cannot run the engine {path}" in eng.log_text()
    assert_clean(eng)


def test_daemonize_and_death_with_the_supervisor(eng):
    script = eng.script('echo "up $$"; while :; do sleep 1; done\n')
    # The starter double-forks it (--daemonize) and gets SIGKILL, as gureumd may.
    argv = eng.command(script, ready_fd=99, extra=("--daemonize",))
    starter = subprocess.Popen([sys.executable, "-c", f"""
import os, subprocess, time
r, w = os.pipe()
os.dup2(w, 99)
subprocess.run({argv!r}, pass_fds=(99,), check=True)
os.close(w)
os.close(99)
print(os.read(r, 100).decode(), end="", flush=True)
time.sleep(1000)
"""], stdout=subprocess.PIPE, text=True, start_new_session=True, env=eng.env)
    try:
        assert starter.stdout.readline() == "ok\n"
    finally:
        os.killpg(starter.pid, signal.SIGKILL)
        starter.wait()
        starter.stdout.close()
    sup = eng.pid()
    f = stat_fields(sup)
    assert int(f[1]) != starter.pid and int(f[3]) == sup  # not the starter's child; its own session
    engine = int(eng.wait_log("up ").split("up ", 1)[1].split()[0])
    assert int(stat_fields(engine)[1]) == sup
    # The supervisor dies: PR_SET_PDEATHSIG takes the engine with it.
    os.kill(sup, signal.SIGKILL)
    assert daemon.wait_gone([sup, engine]) == []
    # Its stale files (the lock died with it) do not stop the next supervisor of the instance.
    assert os.path.exists(os.path.join(eng.rundir, "supervisor.pid"))
    eng.start(eng.script('echo again; exit 0\n', name="again.sh"))
    assert eng.wait_end() == 0
    assert "again\n" in eng.log_text()
    assert eng.exit_json()["exit_code"] == 0
    assert_clean(eng)


def test_one_supervisor_per_instance(eng):
    eng.start(eng.script("echo up; while :; do sleep 1; done\n"))
    first = eng.proc
    ready = eng.start(eng.script("exit 0\n", name="second.sh"), wait=False)
    assert ready.startswith("error: ") and "already has a running supervisor" in ready
    assert eng.wait_end() == 1
    eng.proc = first
    assert first.poll() is None and eng.pid() == first.pid
    eng.stop(0)
    assert eng.wait_end() == 0
    assert_clean(eng)


def test_bad_arguments(eng):
    base = [SUPERVISOR, "run-engine", "--state-dir", eng.state, "--run-dir", eng.run, "--name", eng.name]
    for args, expect in [
        (["--", "busybox"], "must be an absolute path"),
        ([], "command line is missing"),
        (["--"], "command line is missing"),
        (["--lower", "/x", "--", BUSYBOX], "unknown option \"--lower\""),
        (["--qmp", "qmp.sock", "--", BUSYBOX], "--qmp"),
        (["--restart", "sometimes", "--", BUSYBOX], "sometimes"),
    ]:
        r = subprocess.run(base + args, capture_output=True, text=True, env=eng.env, timeout=TIMEOUT)
        assert r.returncode == 2 and expect in r.stderr, (args, r.stderr)
    assert not os.path.exists(eng.run)  # refused before anything was made
