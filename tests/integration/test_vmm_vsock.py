"""virtio-vsock with hybrid unix sockets (--vsock cid=N,socket=PATH), driven from inside the guest
by tests/guest/vsock.c: a guest-initiated connection to PATH_<port> where this test listens, and a
host-initiated one through PATH ("CONNECT <port>\\n" -> "OK <host port>\\n"). Also the socket
file's life (0600, stale replaced, live refused, gone after exit and after SIGKILL) and bad specs."""
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time

import pytest

from vmmtest import GUEST, VMM, confined, connect_when_listening, gone, needs_kvm, vmm, wait_for

PAYLOAD = os.path.join(GUEST, "vsock.elf")

pytestmark = needs_kvm


@pytest.fixture
def sock(tmp_path):
    return str(tmp_path / "v.sock")


def serve_ack(path):
    """Listens on path like a host service: reads the guest's message, answers "ack: " + it.
    Returns (thread, received list)."""
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind(path)
    l.listen(1)
    l.settimeout(30)
    got = []

    def run():
        try:
            c, _ = l.accept()
            with c:
                msg = c.recv(100)
                got.append(msg)
                c.sendall(b"ack: " + msg)
                got.append(c.recv(10))   # b"" once the guest shut the connection down
        finally:
            l.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, got


def test_guest_connects_to_host(sock):
    t, got = serve_ack(sock + "_1234")
    r = vmm("--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={sock}",
            "--cmdline", "vsock_cid=3 vsock_port=1234")
    t.join(10)
    assert r.returncode == 0, r
    assert got == [b"hello from the guest", b""], got
    assert "vsock: host replied" in r.stdout and "vsock: ok" in r.stdout, r
    assert gone(sock)


def test_guest_cid_from_config_file(sock, tmp_path):
    t, got = serve_ack(sock + "_7")
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": PAYLOAD, "memory": "64M", "vsock": f"cid=1234567,socket={sock}",
                               "cmdline": "vsock_cid=1234567 vsock_port=7"}))
    r = vmm("--config", cfg)
    t.join(10)
    assert r.returncode == 0, r
    assert got[0] == b"hello from the guest"
    assert gone(sock)


def test_guest_connect_refused_without_host_listener(sock):
    r = vmm("--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={sock}",
            "--cmdline", "vsock_cid=3 vsock_port=1234")
    assert r.returncode == 64 + 14, r   # the payload saw RST
    assert "connection refused by the host" in r.stdout, r
    assert gone(sock)


def test_host_connects_to_guest(sock):
    """Both directions in one VM: the guest's connection first, then CONNECT 52 from the host
    once the guest prints that it listens; the guest echoes."""
    t, got = serve_ack(sock + "_1234")
    p = subprocess.Popen([VMM, "--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={sock}",
                          "--cmdline", "vsock_cid=3 vsock_port=1234 vsock_listen=52"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = p.stdout.readline()
            seen.append(line)
            if not line or "vsock: listening" in line:
                break
        assert "vsock: listening" in seen[-1], (seen, p.poll())
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as h:
            h.settimeout(10)
            h.connect(sock)
            h.sendall(b"CONNECT 52\n")
            ok = b""
            while not ok.endswith(b"\n"):
                b = h.recv(1)
                assert b, ok
                ok += b
            assert ok.startswith(b"OK ") and int(ok[3:-1]) >= 1 << 30, ok
            h.sendall(b"echo me")
            assert h.recv(100) == b"echo me"
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, (out, err)
    assert "vsock: echoed" in out and "vsock: ok" in out
    t.join(10)
    assert got[0] == b"hello from the guest"
    assert gone(sock)


def test_host_connect_without_guest_driver_is_closed(sock):
    """idle.elf never sets the device up: a host client is closed at once, the VMM runs on."""
    p = subprocess.Popen([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "64M",
                          "--vsock", f"cid=3,socket={sock}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(3):
            with connect_when_listening(sock, p) as h:
                try:
                    h.sendall(b"CONNECT 52\n")
                    assert h.recv(10) == b""
                except (BrokenPipeError, ConnectionResetError):
                    pass                       # closed before or while we wrote
        time.sleep(0.1)
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_socket_removed_after_sigkill(sock):
    p = subprocess.Popen([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "64M",
                          "--vsock", f"cid=3,socket={sock}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: confined(p.pid) or p.poll() is not None, what="the sandbox (the watcher exists)")
        assert p.poll() is None, p.communicate()
        st = os.lstat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert gone(sock), "the watcher did not remove the socket after SIGKILL"


def test_stale_socket_is_replaced_live_one_refused(sock, tmp_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()                       # the file stays, nobody listens
    t, got = serve_ack(sock + "_1234")
    r = vmm("--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={sock}",
            "--cmdline", "vsock_cid=3 vsock_port=1234")
    t.join(10)
    assert r.returncode == 0, r
    assert gone(sock)

    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(sock)
    live.listen(1)
    try:
        r = vmm("--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={sock}")
        assert r.returncode == 1, r
        assert "another process is listening on it" in r.stderr, r
        assert os.path.exists(sock)     # not ours: left alone
    finally:
        live.close()
        os.unlink(sock)
    f = tmp_path / "file"
    f.write_text("x")
    r = vmm("--kernel", PAYLOAD, "--memory", "64M", "--vsock", f"cid=3,socket={f}")
    assert r.returncode == 1 and "is not a socket" in r.stderr, r
    assert f.read_text() == "x"


@pytest.mark.parametrize("spec, message", [
    ("cid=2,socket=SOCK", "cid 2 is out of range"),
    ("cid=4294967295,socket=SOCK", "cid 4294967295 is out of range"),
    ("cid=x,socket=SOCK", "is not a number"),
    ("cid=3", "missing socket="),
    ("socket=SOCK", "missing cid="),
    ("cid=3,socket=SOCK,port=2", 'unknown key "port=2"'),
    ("cid=3,socket=/" + "x" * 100, "longer than 96"),
])
def test_bad_vsock_spec_is_a_clear_error(sock, spec, message):
    spec = spec.replace("SOCK", sock)
    r = vmm("--kernel", PAYLOAD, "--vsock", spec)
    assert r.returncode == 1, r
    assert "--vsock" in r.stderr and message in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r
    assert not os.path.exists(sock)


def test_bad_vsock_setups_leave_nothing(sock, tmp_path):
    r = vmm("--kernel", PAYLOAD, "--vsock", f"cid=3,socket={sock}", "--vsock", f"cid=4,socket={sock}2")
    assert r.returncode == 1 and "at most one vsock device" in r.stderr, r
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": PAYLOAD, "vsock": f"cid=1,socket={sock}"}))
    r = vmm("--config", cfg)
    assert r.returncode == 1 and "vsock" in r.stderr and "out of range" in r.stderr, r
    cfg.write_text(json.dumps({"kernel": PAYLOAD, "vsock": 3}))
    r = vmm("--config", cfg)
    assert r.returncode == 1 and "vsock" in r.stderr, r
    # A good spec, then a failure later in the setup: the socket was created and is removed.
    r = vmm("--kernel", "/nonexistent/kernel", "--vsock", f"cid=3,socket={sock}")
    assert r.returncode == 1 and "/nonexistent/kernel" in r.stderr, r
    assert not os.path.exists(sock)
    r = vmm("--kernel", PAYLOAD, "--vsock", f"cid=3,socket={tmp_path}/no/such/dir/v.sock")
    assert r.returncode == 1 and "bind" in r.stderr, r
