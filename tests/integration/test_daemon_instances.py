"""gureumd's instance API through raw HTTP on the unix socket: every /1.0/instances route and its
error paths, the lifecycle with the real container driver and supervisor, exec (exit code,
recorded output, the WebSocket with and without a TTY), logs, restart policies, and a daemon
restart (SIGTERM and SIGKILL) with running instances.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_daemon_instances.py
"""
import json
import os
import subprocess
import signal
import time

import pytest

from daemon import Gureumd, TIMEOUT, gureumd  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

BUSYBOX = {"type": "image", "alias": "busybox"}
SLEEPER = ["sh", "-c", "echo hello from $NAME; exec sleep 100000"]



# Instance names are per run: cgroups (/gureum/NAME) are host-wide, and other suites may run
# at the same time.
PREFIX = f"t{os.getpid() % 100000}-"


def n(short):
    return PREFIX + short


# The fixture (daemon.py) force-deletes every instance before it stops the daemon, and fails the
# test if anything of the daemon stays on the host (supervisors, cgroups, processes, mounts);
# tests with a daemon of their own call its cleanup(), which checks the same.


def wait_for(pred, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def run_op(d, method, path, body=None, expect_status="Success"):
    st, _, env = d.request(method, path, body=body)
    assert st == 202, f"{method} {path}: HTTP {st}: {env}"
    op = d.wait_operation(env["operation"])
    if expect_status:
        assert op["status"] == expect_status, f"{method} {path}: {op}"
    return op


def create(d, name, start=True, command=SLEEPER, config=None):
    body = {"name": name, "source": BUSYBOX, "start": start, "config": config or {}}
    if command:
        body["command"] = command
    return run_op(d, "POST", "/1.0/instances", body)


def state(d, name):
    return d.get(f"/1.0/instances/{name}/state", expect=200)["metadata"]


def action(d, name, act, **kw):
    return run_op(d, "PUT", f"/1.0/instances/{name}/state", dict(action=act, **kw))


def error(d, method, path, body=None, code=400, contains=None):
    st, _, env = d.request(method, path, body=json.dumps(body).encode() if body is not None else None)
    assert st == code, f"{method} {path}: HTTP {st}, expected {code}: {env}"
    assert env["type"] == "error" and env["error_code"] == code
    if contains:
        assert contains in env["error"], env["error"]
    return env["error"]


def pid_alive(pid):
    """A live process (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going between open and read
        return False


def exec_recorded(d, name, command, **kw):
    op = run_op(d, "POST", f"/1.0/instances/{name}/exec", dict(command=command, **kw))
    return op["metadata"]


# --- validation and errors -----------------------------------------------------------------

@pytest.mark.parametrize("name,why", [
    ("", "empty"), ("-a", "start"), ("a-", "end"), ("UPPER", "invalid character"), ("a_b", "invalid character"),
    ("a" * 64, "too long"), ("../x", "invalid character"), ("a b", "invalid character"),
])
def test_bad_names(gureumd, name, why):
    error(gureumd, "POST", "/1.0/instances", {"name": name, "source": BUSYBOX}, 400, why)


def test_create_errors(gureumd):
    d = gureumd
    error(d, "POST", "/1.0/instances", {"source": BUSYBOX}, 400, "name")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "colour": "red"}, 400,
          'unknown key "colour"')
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"limits.gpu": "1"}}, 400,
          'unknown key "limits.gpu"')
    for bad in ("1.5GiB", "10 MB", "lots", "1gib", "99999999999999999999TiB"):
        error(d, "POST", "/1.0/instances",
              {"name": n('c1'), "source": BUSYBOX, "config": {"limits.memory": bad}}, 400, "limits.memory")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"limits.cpu": "0"}}, 400,
          "limits.cpu")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"limits.cpu": 1}}, 400,
          "string")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"limits.processes": "0"}},
          400, "limits.processes")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"boot.restart": "maybe"}},
          400, "boot.restart")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "config": {"environment.A-B": "x"}},
          400, "environment")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX, "command": [1]}, 400, "command[0]")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "type": "vm", "source": BUSYBOX}, 400, "type")
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": {"type": "copy"}}, 400, "source.type")
    error(d, "POST", "/1.0/instances", {"name": "c1"}, 400, "source")
    st, _, env = d.request("POST", "/1.0/instances", body=b'{"name": "c1",')
    assert st == 400 and "line 1" in env["error"], env
    # Nothing was left behind by the refusals.
    assert d.get("/1.0/instances", expect=200)["metadata"] == []


def test_unknown_instance_is_404(gureumd):
    d = gureumd
    for method, path, body in [("GET", "/1.0/instances/nope", None), ("DELETE", "/1.0/instances/nope", None),
                               ("GET", "/1.0/instances/nope/state", None),
                               ("PUT", "/1.0/instances/nope/state", {"action": "start"}),
                               ("POST", "/1.0/instances/nope/exec", {"command": ["true"]}),
                               ("GET", "/1.0/instances/nope/logs", None)]:
        error(d, method, path, body, 404, "nope")


# --- lifecycle ------------------------------------------------------------------------------

def test_lifecycle(gureumd):
    d = gureumd
    events = d.websocket("/1.0/events?type=lifecycle")
    create(d, n('c1'), config={"environment.NAME": n('c1'), "limits.memory": "64MiB", "limits.processes": "50",
                            "limits.cpu": "0.5"})
    error(d, "POST", "/1.0/instances", {"name": n('c1'), "source": BUSYBOX}, 409, "already exists")
    inst = d.get(f"/1.0/instances/{n('c1')}", expect=200)["metadata"]
    assert inst["name"] == n("c1") and inst["type"] == "container" and inst["image"] == "busybox"
    assert inst["status"] == "Running" and inst["status_code"] == 103
    assert inst["config"]["limits.memory"] == "64MiB" and inst["command"] == SLEEPER
    assert inst["created_at"] and inst["last_used_at"] != "0001-01-01T00:00:00Z"
    st = state(d, n('c1'))
    assert st["status"] == "Running" and st["pid"] > 0 and pid_alive(st["pid"])
    assert st["processes"] >= 1 and st["memory"]["usage"] > 0
    assert d.get("/1.0/instances", expect=200)["metadata"] == [f"/1.0/instances/{n('c1')}"]
    full = d.get("/1.0/instances?recursion=1", expect=200)["metadata"]
    assert [i["name"] for i in full] == [n('c1')] and full[0]["status"] == "Running"

    # impossible transitions
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "start"}, 409, "running")
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "resume"}, 409)
    error(d, "DELETE", f"/1.0/instances/{n('c1')}", None, 409, "force")
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "fly"}, 400, "action")
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "stop", "timeout": "5"}, 400, "timeout")
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "stop", "speed": 1}, 400, 'unknown key "speed"')

    action(d, n('c1'), "pause")
    assert state(d, n('c1'))["status"] == "Frozen"
    error(d, "POST", f"/1.0/instances/{n('c1')}/exec", {"command": ["true"]}, 409, "paused")
    action(d, n('c1'), "resume")
    assert state(d, n('c1'))["status"] == "Running"

    pid = state(d, n('c1'))["pid"]
    action(d, n('c1'), "restart", timeout=1)
    st = state(d, n('c1'))
    assert st["status"] == "Running" and st["pid"] != pid and not pid_alive(pid)

    # sleep as PID 1 ignores SIGTERM: the stop waits for the timeout, then kills.
    t0 = time.monotonic()
    action(d, n('c1'), "stop", timeout=1)
    took = time.monotonic() - t0
    assert took >= 0.8, took  # not before the timeout
    st = state(d, n('c1'))
    assert st["status"] == "Stopped" and st["pid"] == 0
    error(d, "PUT", f"/1.0/instances/{n('c1')}/state", {"action": "stop"}, 409, "stopped")
    error(d, "POST", f"/1.0/instances/{n('c1')}/exec", {"command": ["true"]}, 409)

    action(d, n('c1'), "start")
    t0 = time.monotonic()
    action(d, n('c1'), "stop", timeout=30, force=True)
    assert time.monotonic() - t0 < 25  # force: not the 30 s timeout
    run_op(d, "DELETE", f"/1.0/instances/{n('c1')}")
    error(d, "GET", f"/1.0/instances/{n('c1')}", None, 404)
    assert not os.path.exists(os.path.join(d.state_dir, "instances", n('c1')))

    seen = []
    events.settimeout(5)
    while "instance-deleted" not in seen:
        ev = json.loads(events.recv())
        assert ev["type"] == "lifecycle"
        if ev["metadata"]["source"] == f"/1.0/instances/{n('c1')}":
            seen.append(ev["metadata"]["action"])
    events.close()
    for a in ("instance-created", "instance-started", "instance-paused", "instance-resumed",
              "instance-restarted", "instance-stopped", "instance-deleted"):
        assert a in seen, (a, seen)


def test_force_delete_running(gureumd):
    d = gureumd
    create(d, n('c2'))
    pid = state(d, n('c2'))["pid"]
    st, _, env = d.request("DELETE", f"/1.0/instances/{n('c2')}?force=1")
    assert st == 202
    assert d.wait_operation(env["operation"])["status"] == "Success"
    wait_for(lambda: not pid_alive(pid), what="the workload to be gone")
    error(d, "GET", f"/1.0/instances/{n('c2')}", None, 404)


def test_create_without_start_and_failed_start_rolls_back(gureumd):
    d = gureumd
    create(d, n('c3'), start=False)
    assert state(d, n('c3'))["status"] == "Stopped"
    action(d, n('c3'), "start")
    assert state(d, n('c3'))["status"] == "Running"
    run_op(d, "DELETE", f"/1.0/instances/{n('c3')}?force=1")
    # A command that cannot run: the launch fails and leaves nothing.
    op = run_op(d, "POST", "/1.0/instances",
                {"name": n('c4'), "source": BUSYBOX, "start": True, "command": ["/no/such/program"]},
                expect_status=None)
    if op["status"] == "Failure":
        error(d, "GET", f"/1.0/instances/{n('c4')}", None, 404)
        assert not os.path.exists(os.path.join(d.state_dir, "instances", n('c4')))
    else:  # the driver reports exec failures as an exit (127): then it is simply stopped
        wait_for(lambda: state(d, n('c4'))["status"] == "Stopped", what="c4 to stop")
        run_op(d, "DELETE", f"/1.0/instances/{n('c4')}")


# --- exec -----------------------------------------------------------------------------------

def test_exec_recorded(gureumd):
    d = gureumd
    create(d, n('e1'))
    md = exec_recorded(d, n('e1'), ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert md["return"] == 7 and md["stdout"] == "out\n" and md["stderr"] == "err\n"
    md = exec_recorded(d, n('e1'), ["sh", "-c", "echo $FOO; pwd; id -u"], environment={"FOO": "bar"}, cwd="/tmp",
                       user=1000, group=1000)
    assert md["return"] == 0 and md["stdout"] == "bar\n/tmp\n1000\n", md
    md = exec_recorded(d, n('e1'), ["sh", "-c", "kill -9 $$"])
    assert md["return"] == 137
    # A request far over 64 KiB (the API takes bodies up to 1 MiB) reaches the command whole.
    md = exec_recorded(d, n('e1'), ["sh", "-c", 'echo ${#BIG} ${#BIG2}'],
                       environment={"BIG": "x" * 100000, "BIG2": "y" * 100000})
    assert md["return"] == 0 and md["stdout"] == "100000 100000\n", md
    md = exec_recorded(d, n('e1'), ["/no/such"])
    assert md["return"] in (126, 127), md
    error(d, "POST", f"/1.0/instances/{n('e1')}/exec", {"command": []}, 400, "command")
    error(d, "POST", f"/1.0/instances/{n('e1')}/exec", {"command": ["true"], "environment": {"A=B": "1"}}, 400)
    error(d, "POST", f"/1.0/instances/{n('e1')}/exec", {"command": ["true"], "tty": True}, 400, 'unknown key "tty"')


def ws_collect(ws):
    """(stdout bytes, stderr bytes) from an exec websocket until the server closes it."""
    import websocket

    out, err = b"", b""
    while True:
        try:
            op, data = ws.recv_data()
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            # websocket-client answers the server's close frame; the server may be gone by then
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        if data[0] == 1:
            out += data[1:]
        elif data[0] == 2:
            err += data[1:]
    return out, err


def test_exec_websocket_pipes(gureumd):
    d = gureumd
    create(d, n('e2'))
    st, _, env = d.request("POST", f"/1.0/instances/{n('e2')}/exec",
                           body=json.dumps({"command": ["sh", "-c", "cat; echo done >&2; exit 4"],
                                            "wait-for-websocket": True}).encode())
    assert st == 202, env
    url = env["metadata"]["metadata"]["websocket"]
    ws = d.websocket(url)
    ws.send_binary(b"\x00hello stdin\n")
    ws.send_binary(b"\x03" + json.dumps({"eof": True}).encode())
    out, err = ws_collect(ws)
    assert out == b"hello stdin\n" and err == b"done\n"
    op = d.wait_operation(env["operation"])
    assert op["status"] == "Success" and op["metadata"]["return"] == 4


def test_exec_websocket_tty(gureumd):
    d = gureumd
    create(d, n('e3'))
    st, _, env = d.request("POST", f"/1.0/instances/{n('e3')}/exec",
                           body=json.dumps({"command": ["sh"], "interactive": True, "width": 80, "height": 24,
                                            "wait-for-websocket": True}).encode())
    assert st == 202, env
    ws = d.websocket(env["metadata"]["metadata"]["websocket"])
    # The shell's prompt first: the process runs and the relay is attached.
    first = b""
    while b"#" not in first:
        first += ws.recv_data()[1][1:]
    ws.send_binary(b"\x00stty size\n")
    while b"24 80" not in first:  # the initial size from the request
        first += ws.recv_data()[1][1:]
    # Frames are handled in order: the resize is applied before the next input is written.
    ws.send_binary(b"\x03" + json.dumps({"resize": {"width": 100, "height": 30}}).encode())
    ws.send_binary(b"\x00stty size; [ -t 0 ] && echo tty-yes; echo $((6*7)); exit 5\n")
    out, _ = ws_collect(ws)
    text = out.decode(errors="replace")
    assert "30 100" in text and "tty-yes" in text and "42" in text, text
    op = d.wait_operation(env["operation"])
    assert op["metadata"]["return"] == 5


def test_exec_tty_resize_right_after_connecting(gureumd):
    """A resize sent at once, while the process may still be starting (the server has accepted the
    WebSocket but not attached its relay yet), is kept and applied, not dropped or undone by the
    initial size (the exec used to set that after handing the terminal over: 1 in 40 failed)."""
    d = gureumd
    create(d, n('e4'))
    for i in range(10):
        st, _, env = d.request("POST", f"/1.0/instances/{n('e4')}/exec",
                               body=json.dumps({"command": ["sh", "-c", "read x; stty size; echo $x"],
                                                "interactive": True, "width": 80, "height": 24,
                                                "wait-for-websocket": True}).encode())
        assert st == 202, env
        ws = d.websocket(env["metadata"]["metadata"]["websocket"])
        ws.send_binary(b"\x03" + json.dumps({"resize": {"width": 123 + i, "height": 45}}).encode())
        ws.send_binary(b"\x00go\n")
        out, _ = ws_collect(ws)
        text = out.decode(errors="replace")
        assert f"45 {123 + i}" in text and "go" in text, text
        assert d.wait_operation(env["operation"])["metadata"]["return"] == 0


def test_exec_tty_command_not_found_is_said(gureumd):
    """With a TTY the process's output is the terminal; an exec that cannot start its command says
    why on stderr (channel 2, or the recorded stderr), not only with 127."""
    d = gureumd
    create(d, n('e5'))
    tty = {"command": ["no-such-command"], "interactive": True, "width": 80, "height": 24}
    st, _, env = d.request("POST", f"/1.0/instances/{n('e5')}/exec", body=dict(tty, **{"wait-for-websocket": True}))
    assert st == 202, env
    out, err = ws_collect(d.websocket(env["metadata"]["metadata"]["websocket"]))
    assert b"no-such-command" in err and b"not found" in err, (out, err)
    assert d.wait_operation(env["operation"])["metadata"]["return"] == 127
    st, _, env = d.request("POST", f"/1.0/instances/{n('e5')}/exec", body=tty)
    md = d.wait_operation(env["operation"])["metadata"]
    assert md["return"] == 127 and "not found" in md["stderr"], md


# --- logs and console -------------------------------------------------------------------------

def test_logs(gureumd):
    d = gureumd
    create(d, n('l1'), command=["sh", "-c", "echo first line; while true; do echo tick; sleep 0.2; done"])
    wait_for(lambda: b"first line" in d.request("GET", f"/1.0/instances/{n('l1')}/logs")[2], what="the log")
    st, hdrs, body = d.request("GET", f"/1.0/instances/{n('l1')}/logs")
    body = body.replace(b"\r\n", b"\n")  # the instance's stdio is a terminal (onlcr)
    assert st == 200 and hdrs["content-type"].startswith("text/plain") and body.startswith(b"first line\n")
    error(d, "GET", f"/1.0/instances/{n('l1')}/logs?follow=1", None, 400, "WebSocket")
    ws = d.websocket(f"/1.0/instances/{n('l1')}/logs?follow=1")
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while (b"first line" not in got or got.count(b"tick") < 10) and time.monotonic() < deadline:
        got += ws.recv_data()[1]
    ws.close()
    got = got.replace(b"\r\n", b"\n")
    assert got.startswith(b"first line\n") and got.count(b"tick") >= 10


def test_console(gureumd):
    d = gureumd
    create(d, n('k1'), command=["sh"])
    error(d, "GET", f"/1.0/instances/{n('k1')}/console", None, 400, "WebSocket")
    st, _, env = d.request("GET", f"/1.0/instances/{n('k1')}/console",
                           headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                    "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    if st == 501:
        pytest.skip("this instance has no console")
    ws = d.websocket(f"/1.0/instances/{n('k1')}/console")
    ws.send_binary(b"echo console-$((40+2))\n")
    got = b""
    deadline = time.monotonic() + 10
    while b"console-42" not in got and time.monotonic() < deadline:
        got += ws.recv_data()[1]
    ws.close()
    assert b"console-42" in got


# --- restart policies -------------------------------------------------------------------------

def test_restart_on_failure_n(gureumd):
    d = gureumd
    create(d, n('r1'), command=["sh", "-c", "exit 3"], config={"boot.restart": "on-failure:2"})
    st = wait_for(lambda: (lambda s: s if s["status"] == "Stopped" and s["restarts"] == 2 else None)(state(d, n('r1'))),
                  what="r1 to give up after 2 restarts")
    assert st["exit_code"] == 3 and "3" in st["stop_reason"]
    time.sleep(1)
    assert state(d, n('r1'))["restarts"] == 2


def test_restart_always_with_backoff(gureumd):
    d = gureumd
    create(d, n('r2'), command=["sh", "-c", "exit 0"], config={"boot.restart": "always"})
    samples = []

    def sample():
        samples.append(state(d, n('r2')))
        return samples[-1]["restarts"] >= 3
    wait_for(sample, what="restarts")
    # Honest status between two runs: "Starting" (106) with the last exit's reason; never
    # "Running" without a workload.
    assert not [s for s in samples if s["status"] == "Running" and s["pid"] == 0], samples
    waiting = [s for s in samples if s["status"] == "Starting"]
    assert waiting, samples
    assert all(s["status_code"] == 106 for s in waiting), waiting
    assert any(s["stop_reason"] for s in waiting), waiting
    # back-off: 100, 200, 400, 800 ms ... so far fewer than one restart per 10 ms
    n1 = state(d, n('r2'))["restarts"]
    time.sleep(1)
    n2 = state(d, n('r2'))["restarts"]
    assert n2 - n1 <= 5, (n1, n2)
    # A stop request is not "a failure": it stays stopped.
    action(d, n('r2'), "stop", timeout=1, force=True)
    time.sleep(0.5)
    assert state(d, n('r2'))["status"] == "Stopped"


# --- daemon restarts ------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_daemon_restart_keeps_instances(sig):
    d = Gureumd()
    try:
        d.start()
        create(d, n('p1'))
        create(d, n('p2'), start=False)
        pid = state(d, n('p1'))["pid"]
        d.stop(sig=sig, expect_status=0 if sig == signal.SIGTERM else None)
        assert pid_alive(pid), "the instance died with the daemon"
        d.start()
        st = state(d, n('p1'))
        assert st["status"] == "Running" and st["pid"] == pid
        assert state(d, n('p2'))["status"] == "Stopped"
        md = exec_recorded(d, n('p1'), ["echo", "still here"])
        assert md["return"] == 0 and md["stdout"] == "still here\n"
        # and the re-attached daemon can still stop and delete it
        run_op(d, "DELETE", f"/1.0/instances/{n('p1')}?force=1")
        wait_for(lambda: not pid_alive(pid), what="p1's workload to go")
        run_op(d, "DELETE", f"/1.0/instances/{n('p2')}")
        d.stop()
    finally:
        d.cleanup()


def test_instance_that_died_while_daemon_was_down():
    d = Gureumd()
    try:
        d.start()
        create(d, n('p3'))
        st = state(d, n('p3'))
        d.stop(sig=signal.SIGKILL, expect_status=None)
        os.kill(st["pid"], signal.SIGKILL)  # the workload dies while nobody watches
        wait_for(lambda: not pid_alive(st["pid"]), what="p3 to die")
        d.start()
        st = wait_for(lambda: (lambda s: s if s["status"] == "Stopped" else None)(state(d, n('p3'))),
                      what="p3 reported stopped")
        assert st["stop_reason"], st
        inst = d.get(f"/1.0/instances/{n('p3')}", expect=200)["metadata"]
        assert inst["status"] == "Stopped" and inst["stop_reason"]
        run_op(d, "DELETE", f"/1.0/instances/{n('p3')}")
        d.stop()
    finally:
        d.cleanup()


def test_paused_instance_can_be_stopped_and_force_deleted(gureumd):
    d = gureumd
    create(d, n("f1"))
    action(d, n("f1"), "pause")
    action(d, n("f1"), "stop", timeout=1)
    assert state(d, n("f1"))["status"] == "Stopped"
    action(d, n("f1"), "start")
    action(d, n("f1"), "pause")
    pid = state(d, n("f1"))["pid"]
    run_op(d, "DELETE", f"/1.0/instances/{n('f1')}?force=1")
    wait_for(lambda: not pid_alive(pid), what="the frozen workload to go")


def test_unknown_workload_is_reported_not_killed():
    import sqlite3

    d = Gureumd()
    try:
        d.start()
        create(d, n("u1"))
        pid = state(d, n("u1"))["pid"]
        d.stop()
        db = sqlite3.connect(os.path.join(d.state_dir, "gureum.db"))
        db.execute("DELETE FROM instances WHERE name = ?", (n("u1"),))
        db.commit()
        db.close()
        d.start()
        events = d.websocket("/1.0/events?type=lifecycle")  # after start-up: nothing to see
        events.close()
        assert f"'{n('u1')}' exists on this host but not in the database" in d.stderr()
        assert pid_alive(pid), "reconciliation killed a workload it did not know"
        assert d.get("/1.0/instances", expect=200)["metadata"] == []
        # Put it back so the test can clean up through the API.
        d.stop()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), what="the unknown workload to be killed by the test")
        wait_for(lambda: not supervisor_alive(d, n("u1")), what="its supervisor to end")
        # Its network namespace is the unknown workload's too: gone with it, by hand.
        netns = os.path.join(d.run_dir, "netns", n("u1"))
        subprocess.run(["umount", netns], check=True)
        os.unlink(netns)
        d.start()  # its clean stop removes the (now empty) cgroup parent
        d.stop()
    finally:
        sup = supervisor_alive(d, n("u1"))
        if sup:  # the test failed half way: stop what it left (SIGTERM stops the container)
            os.kill(sup, signal.SIGTERM)
            wait_for(lambda: not supervisor_alive(d, n("u1")), what="its supervisor to end")
        d.cleanup()


def supervisor_alive(d, name):
    try:
        with open(os.path.join(d.run_dir, "instances", name, "supervisor.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pid if pid_alive(pid) else 0
