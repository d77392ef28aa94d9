"""gureumd's server core: envelopes, routing, limits, JSON errors, operations, events, TLS and
token authentication, the unix socket and the run-directory lock.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_daemon_core.py
"""
import json
import os
import re
import signal
import socket
import subprocess
import stat
import time

import pytest

from daemon import Gureumd, TIMEOUT, free_port, gureumd  # noqa: F401 (fixture)

ENVELOPE_KEYS = {"type", "status", "status_code", "operation", "error_code", "error", "metadata"}


def assert_sync(env):
    assert set(env) == ENVELOPE_KEYS, env
    assert env["type"] == "sync" and env["status"] == "Success" and env["status_code"] == 200
    assert env["operation"] == "" and env["error_code"] == 0 and env["error"] == ""


def assert_error(env, code, contains=None):
    assert set(env) == ENVELOPE_KEYS, env
    assert env["type"] == "error" and env["status"] == "" and env["status_code"] == 0
    assert env["error_code"] == code and env["metadata"] is None and env["operation"] == ""
    if contains:
        assert contains in env["error"], env["error"]


# --- envelopes and routing --------------------------------------------------------------------

def test_root_and_server_info(gureumd):
    st, hdrs, env = gureumd.request("GET", "/")
    assert st == 200 and hdrs["content-type"] == "application/json"
    assert_sync(env)
    assert env["metadata"] == ["/1.0"]
    env = gureumd.get("/1.0", expect=200)
    assert_sync(env)
    md = env["metadata"]
    assert md["api_version"] == "1.0" and md["auth"] == "trusted"
    assert md["environment"]["driver"] == "container"
    assert md["environment"]["kernel"] == os.uname().release
    assert md["environment"]["server_pid"] == gureumd.proc.pid
    # a trailing slash is the same resource
    assert gureumd.get("/1.0/", expect=200)["metadata"]["api_version"] == "1.0"


def test_images_list_the_builtin_busybox(gureumd):
    """The busybox image, built from Debian's busybox-static at the daemon's first start into the
    image store (tests/integration/test_images.py covers the store itself)."""
    (img,) = gureumd.get("/1.0/images?recursion=1", expect=200)["metadata"]
    assert gureumd.get("/1.0/images", expect=200)["metadata"] == ["/1.0/images/" + img["fingerprint"]]
    assert len(img["fingerprint"]) == 64 and len(img["layers"]) == 1
    assert img["aliases"] == [{"name": "busybox"}] and img["type"] == "container"
    assert img["size"] > 0 and img["source"].startswith("build busybox (debian busybox-static")
    assert gureumd.get("/1.0/images/busybox", expect=200)["metadata"] == img
    env = gureumd.get("/1.0/images/debian", expect=404)
    assert "not found" in env["error"]


def test_unknown_path_is_404(gureumd):
    for path in ("/2.0", "/1.0/nothing", "/1.0/operations/x/y/z"):
        st, _, env = gureumd.request("GET", path)
        assert st == 404, path
        assert_error(env, 404, "not found")


def test_wrong_method_is_405_with_allow(gureumd):
    st, hdrs, env = gureumd.request("PUT", "/1.0", body=b"{}")
    assert st == 405 and hdrs["allow"] == "GET"
    assert_error(env, 405, "PUT")
    st, hdrs, env = gureumd.request("POST", "/1.0/operations/abc", body=b"{}")
    assert st == 405 and set(hdrs["allow"].split(", ")) == {"GET", "DELETE"}
    st, hdrs, _ = gureumd.request("DELETE", "/1.0/tokens")
    assert st == 405 and set(hdrs["allow"].split(", ")) == {"GET", "POST"}


def test_keep_alive_serves_several_requests(gureumd):
    conn = gureumd.connection()
    try:
        for _ in range(3):
            conn.request("GET", "/1.0")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["type"] == "sync"
        conn.request("POST", "/1.0/tokens", body=b"{\"description\": \"k\"}")
        r = conn.getresponse()
        assert r.status == 200 and len(json.loads(r.read())["metadata"]["token"]) == 64
    finally:
        conn.close()


# --- bodies and JSON --------------------------------------------------------------------------

def test_body_over_limit_is_413_and_at_limit_is_read(gureumd):
    limit = 1 << 20
    st, _, env = gureumd.request("POST", "/1.0/tokens", body=b" " * (limit + 1))
    assert st == 413
    assert_error(env, 413, "too large")
    # exactly the limit is accepted (and parsed: JSON may carry that much whitespace)
    body = b"{}" + b" " * (limit - 2)
    st, _, env = gureumd.request("POST", "/1.0/tokens", body=body)
    assert st == 200, env
    assert_sync(env)


def test_huge_declared_body_is_refused_at_once(gureumd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(gureumd.socket_path)
    s.sendall(b"POST /1.0/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n{}")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break  # the server closed the connection
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert_error(body, 413)


@pytest.mark.parametrize("body, line, column, position", [
    (b'{"description": x}', 1, 17, 17),
    (b'{\n  "description": "a",\n  "b": }', 3, 8, 32),
    (b'{"description": "a"', 1, 19, 19),
])
def test_malformed_json_names_the_position(gureumd, body, line, column, position):
    # jansson's numbers: column 1-based, position = bytes read up to and including the bad token
    st, _, env = gureumd.request("POST", "/1.0/tokens", body=body)
    assert st == 400
    assert_error(env, 400, "malformed JSON")
    m = re.search(r"line (\d+), column (\d+), position (\d+)", env["error"])
    assert m, env["error"]
    assert (int(m[1]), int(m[2]), int(m[3])) == (line, column, position), env["error"]


def test_body_must_be_an_object_and_keys_known(gureumd):
    st, _, env = gureumd.request("POST", "/1.0/tokens", body=b"[1, 2]")
    assert st == 400
    assert_error(env, 400, "JSON object")
    st, _, env = gureumd.request("POST", "/1.0/tokens", body=b'{"descriptoin": "typo"}')
    assert st == 400
    assert_error(env, 400, "descriptoin")


def test_chunked_request_body_is_refused(gureumd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(gureumd.socket_path)
    s.sendall(b"POST /1.0/tokens HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    data = s.recv(65536)
    s.close()
    assert data.startswith(b"HTTP/1.1 411"), data


# --- operations -------------------------------------------------------------------------------

def test_unknown_operation(gureumd):
    for method, path in (("GET", "/1.0/operations/nope"), ("DELETE", "/1.0/operations/nope"),
                         ("GET", "/1.0/operations/nope/wait?timeout=1")):
        st, _, env = gureumd.request(method, path)
        assert st == 404, (method, path)
        assert_error(env, 404, "nope")
    env = gureumd.get("/1.0/operations", expect=200)
    assert_sync(env)
    assert env["metadata"] == []


def test_wait_timeout_must_be_a_number(gureumd):
    st, _, env = gureumd.request("GET", "/1.0/operations/x/wait?timeout=soon")
    assert st == 400
    assert_error(env, 400, "timeout")


def test_operation_websocket_needs_upgrade_and_secret(gureumd):
    import websocket
    st, _, env = gureumd.request("GET", "/1.0/operations/x/websocket?secret=s")
    assert st == 400
    assert_error(env, 400, "WebSocket")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket("/1.0/operations/x/websocket")
    assert e.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket("/1.0/operations/x/websocket?secret=abc")
    assert e.value.status_code == 404


# --- events -----------------------------------------------------------------------------------

def test_events_need_a_websocket_and_known_types(gureumd):
    import websocket
    st, _, env = gureumd.request("GET", "/1.0/events")
    assert st == 400
    assert_error(env, 400, "WebSocket")
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket("/1.0/events?type=lifecycle,bogus")
    assert e.value.status_code == 400


def test_websocket_on_a_plain_route_gets_the_http_reply(gureumd):
    import websocket
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket("/1.0")
    assert e.value.status_code == 400
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket("/1.0/nothing")
    assert e.value.status_code == 404


def test_events_subscriber_leaving_is_cleaned_up(gureumd):
    # many subscribers come and go; the daemon keeps serving and stops cleanly (fixture)
    for _ in range(20):
        ws = gureumd.websocket("/1.0/events")
        ws.close()
    ws = gureumd.websocket("/1.0/events?type=operation,lifecycle")
    assert gureumd.get("/1.0", expect=200)["type"] == "sync"
    ws.close()


# --- authentication and TLS -------------------------------------------------------------------

def test_tls_token_authentication_and_certificate_reuse():
    port = free_port()
    d = Gureumd(listen=f"127.0.0.1:{port}")
    try:
        d.start()
        crt = os.path.join(d.state_dir, "server.crt")
        key = os.path.join(d.state_dir, "server.key")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(crt).st_mode) == 0o600
        with open(crt, "rb") as f:
            cert1 = f.read()

        st, _, env = d.tls_request("GET", "/1.0")
        assert st == 403
        assert_error(env, 403, "Bearer")
        st, _, env = d.tls_request("GET", "/1.0", token="0" * 64)
        assert st == 403
        assert_error(env, 403, "unknown token")

        token = d.token("tls test")
        st, _, env = d.tls_request("GET", "/1.0", token=token)
        assert st == 200
        assert_sync(env)
        fp = env["metadata"]["environment"]["certificate_fingerprint"]
        assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", fp)
        # tokens are made over the unix socket only
        st, _, env = d.tls_request("POST", "/1.0/tokens", token=token, body={})
        assert st == 403
        # the token is stored as a hash only
        st, _, env = d.request("GET", "/1.0/tokens")
        assert st == 200 and token not in json.dumps(env)
        d.stop()

        # restart: the same certificate, the same token
        d.start()
        with open(crt, "rb") as f:
            assert f.read() == cert1
        st, _, env = d.tls_request("GET", "/1.0", token=token)
        assert st == 200
        assert env["metadata"]["environment"]["certificate_fingerprint"] == fp
        d.stop()
    finally:
        d.cleanup()


def test_bad_listen_address_is_refused():
    for listen, msg in (("nonsense", "ADDRESS:PORT"), ("127.0.0.1:0", "port"), ("localhost:443", "IPv4"),
                        ("127.0.0.1:99999", "port")):
        d = Gureumd(listen=listen)
        try:
            d.start(wait=False)
            assert d.proc.wait(timeout=TIMEOUT) == 1
            assert msg in d.stderr(), d.stderr()
            assert not os.path.exists(d.socket_path)
        finally:
            d.cleanup()


# --- the unix socket and the lock -------------------------------------------------------------

def test_socket_and_directories_are_owner_only(gureumd):
    assert stat.S_IMODE(os.stat(gureumd.socket_path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(gureumd.socket_path).st_mode)
    # RUN: others may only pass through (dnsmasq, as nobody, reads RUN/networks/NAME/hosts);
    # nothing in it is theirs to open.
    assert stat.S_IMODE(os.stat(gureumd.run_dir).st_mode) == 0o711
    for entry in os.listdir(gureumd.run_dir):
        mode = stat.S_IMODE(os.lstat(os.path.join(gureumd.run_dir, entry)).st_mode)
        assert entry == "networks" or mode & 0o077 == 0, (entry, oct(mode))
    assert stat.S_IMODE(os.stat(gureumd.state_dir).st_mode) == 0o700


def test_second_daemon_on_the_same_run_dir_is_refused(gureumd):
    other = Gureumd(run_dir=gureumd.run_dir)
    try:
        other.start(wait=False)
        assert other.proc.wait(timeout=TIMEOUT) == 1
        assert "already running" in other.stderr() and str(gureumd.proc.pid) in other.stderr()
    finally:
        other.cleanup()
    # the first one is untouched
    assert gureumd.get("/1.0", expect=200)["type"] == "sync"


def test_stale_socket_is_replaced_and_live_one_refused():
    d = Gureumd()
    try:
        os.makedirs(d.run_dir, mode=0o700)
        # stale: a socket file nobody listens on
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.socket_path)
        s.close()
        d.start()
        assert d.get("/1.0", expect=200)["type"] == "sync"
        d.stop()
        assert not os.path.exists(d.socket_path)

        # live: someone else listens there
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(d.socket_path)
        s.listen(1)
        try:
            d.start(wait=False)
            assert d.proc.wait(timeout=TIMEOUT) == 1
            assert "in use" in d.stderr()
            assert os.path.exists(d.socket_path)
        finally:
            s.close()
    finally:
        d.cleanup()


def test_sigint_stops_cleanly():
    d = Gureumd()
    try:
        d.start()
        ws = d.websocket("/1.0/events")
        d.stop(sig=signal.SIGINT)
        ws.close()
        assert not os.path.exists(d.socket_path)
        assert "launch an instance with:  " in d.stdout()
    finally:
        d.cleanup()


def test_printed_launch_command_works_as_printed(gureumd):
    """gureumd's start-up hint names a CLI that exists (the build tree's, by its full path) and
    this daemon's socket: run as printed, it launches c1."""
    import shlex
    line = [x for x in gureumd.stdout().splitlines() if "launch an instance with:  " in x][0]
    cmd = shlex.split(line.split("launch an instance with:  ", 1)[1])
    assert os.path.isabs(cmd[0]) and os.access(cmd[0], os.X_OK), line
    assert cmd[-3:] == ["launch", "busybox", "c1"] and gureumd.socket_path in cmd, line
    r = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0 and r.stdout == b"c1\n", r
    assert gureumd.get("/1.0/instances/c1", expect=200)["metadata"]["status"] == "Running"


def test_bad_flags_exit_1():
    from daemon import run_gureumd
    for args, msg in ((["--bogus"], "unknown option"), (["--log-level", "loud"], "unknown level"),
                      (["--state-dir"], "missing value"), (["extra"], "unexpected argument")):
        r = run_gureumd(args, capture_output=True, text=True, timeout=TIMEOUT)
        assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)


# --- operations, events and relays with real instances ----------------------------------------

def launch(d, name):
    env = d.post("/1.0/instances", {"name": name, "source": {"type": "image", "alias": "busybox"},
                                    "start": True}, expect=202)
    op = d.wait_operation(env["operation"])
    assert op["status"] == "Success", op
    return op


def test_async_envelope_operation_list_and_events(gureumd):
    ws = gureumd.websocket("/1.0/events?type=operation")
    lc = gureumd.websocket("/1.0/events?type=lifecycle")
    st, _, env = gureumd.request("POST", "/1.0/instances", body={
        "name": "c1", "source": {"type": "image", "alias": "busybox"}, "start": True})
    assert st == 202
    assert set(env) == ENVELOPE_KEYS
    assert env["type"] == "async" and env["status"] == "Operation created" and env["status_code"] == 100
    assert env["error_code"] == 0 and env["error"] == ""
    op = env["metadata"]
    assert env["operation"] == f"/1.0/operations/{op['id']}"
    assert op["class"] == "task" and op["status_code"] == 103 and op["status"] == "Running"
    assert op["resources"]["instances"] == ["/1.0/instances/c1"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", op["id"])
    done = gureumd.wait_operation(env["operation"])
    assert done["status"] == "Success" and done["status_code"] == 200 and done["err"] == ""

    # the operation stream: this operation from Running to Success, nothing of another type
    seen = []
    while not seen or seen[-1]["metadata"]["status_code"] < 200:
        ev = json.loads(ws.recv())
        assert ev["type"] == "operation" and ev["timestamp"].endswith("Z")
        if ev["metadata"]["id"] == op["id"]:
            seen.append(ev)
    assert seen[0]["metadata"]["status"] == "Running" and seen[-1]["metadata"]["status"] == "Success"
    # the lifecycle stream got the instance's events, and no operation event
    actions = set()
    while "instance-started" not in actions:
        ev = json.loads(lc.recv())
        assert ev["type"] == "lifecycle"
        actions.add(ev["metadata"]["action"])
    ws.close()
    lc.close()

    env = gureumd.get("/1.0/operations", expect=200)
    assert env["operation"] == "" and f"/1.0/operations/{op['id']}" in env["metadata"]
    env = gureumd.get("/1.0/operations?recursion=1", expect=200)
    assert any(o["id"] == op["id"] and o["status"] == "Success" for o in env["metadata"])
    env = gureumd.get(f"/1.0/operations/{op['id']}", expect=200)
    assert env["metadata"]["status_code"] == 200
    # finished: cancelling it is a conflict
    st, _, env = gureumd.request("DELETE", f"/1.0/operations/{op['id']}")
    assert st == 409
    assert_error(env, 409, "already ended")
    gureumd.wait_operation(gureumd.delete("/1.0/instances/c1?force=1", expect=202)["operation"])


def test_wait_with_timeout_and_server_not_blocked(gureumd):
    import threading
    launch(gureumd, "w1")
    env = gureumd.post("/1.0/instances/w1/exec", {"command": ["sleep", "2"]}, expect=202)
    url = env["operation"]
    t = time.monotonic()
    env = gureumd.get(f"{url}/wait?timeout=0.3", expect=200)
    took = time.monotonic() - t
    assert env["metadata"]["status"] == "Running" and took >= 0.25, (env, took)  # (Running: it did not wait for the end)
    # a waiter without limit is pending; meanwhile the server answers others at once
    result = {}
    waiter = threading.Thread(target=lambda: result.update(op=gureumd.wait_operation(url)))
    waiter.start()
    for _ in range(5):
        t = time.monotonic()
        assert gureumd.get("/1.0", expect=200)["type"] == "sync"
        assert time.monotonic() - t < 0.5
    # not cancellable (exec): 403
    st, _, env = gureumd.request("DELETE", url)
    assert st == 403
    assert_error(env, 403, "cannot be cancelled")
    waiter.join(TIMEOUT)
    assert result["op"]["status"] == "Success" and result["op"]["metadata"]["return"] == 0
    assert gureumd.get(f"{url}/wait?timeout=0", expect=200)["metadata"]["status_code"] == 200


def test_waiter_leaving_early_is_forgotten(gureumd):
    launch(gureumd, "w2")
    env = gureumd.post("/1.0/instances/w2/exec", {"command": ["sleep", "1"]}, expect=202)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(gureumd.socket_path)
    s.sendall(f"GET {env['operation']}/wait HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    s.close()   # gone before the answer
    op = gureumd.wait_operation(env["operation"])
    assert op["status"] == "Success"


def exec_ws(d, name, command, **extra):
    env = d.post(f"/1.0/instances/{name}/exec", dict({"command": command, "wait-for-websocket": True}, **extra),
                 expect=202)
    op = env["metadata"]
    assert op["class"] == "websocket"
    return env["operation"], op["metadata"]["websocket"]


def read_channels(ws):
    """Frames until the server's close (1000). recv_frame, not recv_data: libwebsockets closes the
    connection right after its close frame, and recv_data's close reply would hit a closed socket."""
    import websocket
    out = {1: bytearray(), 2: bytearray()}
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            assert frame.data[:2] == b"\x03\xe8", frame.data   # 1000, normal closure
            break
        assert frame.opcode == websocket.ABNF.OPCODE_BINARY and frame.fin
        out[frame.data[0]] += frame.data[1:]
    return out


def test_exec_websocket_channels_stdin_eof_and_code(gureumd):
    launch(gureumd, "x1")
    op_url, ws_url = exec_ws(gureumd, "x1", ["sh", "-c", "cat; echo bye >&2; exit 7"])
    # wrong secret, then the right one; a second client is refused
    import websocket
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gureumd.websocket(ws_url[:-1] + ("0" if ws_url[-1] != "0" else "1"))
    assert e.value.status_code == 403
    ws = gureumd.websocket(ws_url)
    # A second client: 409 once the relay is taken; if it came while the process was still
    # starting, its upgrade was accepted (pending) and it is closed with the reason instead.
    try:
        second = gureumd.websocket(ws_url)
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 409
    else:
        frame = second.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and frame.data[:2] == b"\x03\xf3"   # 1011
        assert b"already connected" in frame.data
        second.close()
    payload = bytes(range(256)) * 1024   # 256 KiB, every byte value
    for i in range(0, len(payload), 10000):
        ws.send_binary(b"\x00" + payload[i:i + 10000])
    ws.send_binary(b"\x03" + json.dumps({"eof": True}).encode())
    out = read_channels(ws)
    assert out[1] == payload and out[2] == b"bye\n"
    op = gureumd.wait_operation(op_url)
    assert op["status"] == "Success" and op["metadata"]["return"] == 7


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_exec_websocket_backpressure(gureumd):
    """A client that does not read holds the process back: gureumd does not buffer its output."""
    launch(gureumd, "x2")
    size = 64 << 20
    op_url, ws_url = exec_ws(gureumd, "x2", ["sh", "-c", f"head -c {size} /dev/zero"])
    rss0 = vm_rss_kib(gureumd.proc.pid)
    ws = gureumd.websocket(ws_url)
    time.sleep(1.5)   # not reading
    assert gureumd.get(op_url, expect=200)["metadata"]["status"] == "Running"
    grown = vm_rss_kib(gureumd.proc.pid) - rss0
    assert grown < 16 * 1024, f"gureumd grew by {grown} KiB while its client did not read"
    out = read_channels(ws)
    assert len(out[1]) == size and out[1].count(0) == size
    assert gureumd.wait_operation(op_url)["metadata"]["return"] == 0
