"""Serial and virtio-console input and backends, and O_DIRECT disks, driven by the guest payloads
tests/guest/console.c (uart=1: read a line on the 16550A, with the receive interrupt pending in
IIR; vcon=1: echo a line through virtio-console) and tests/guest/virtio.c (blk=1)."""
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from vmmtest import BUILD, GUEST, VMM, confined, connect_when_listening, gone, needs_kvm, wait_for

CONSOLE = os.path.join(GUEST, "console.elf")

pytestmark = needs_kvm


def start(*args, stdin=subprocess.DEVNULL):
    return subprocess.Popen([VMM, *map(str, args)], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def read_until(read, marker, timeout=30):
    """Calls read() (bytes, b'' at the end) until marker is in what came."""
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        assert time.monotonic() < deadline, f"timed out waiting for {marker!r}; got {buf!r}"
        chunk = read()
        assert chunk, f"ended before {marker!r}; got {buf!r}"
        buf += chunk
    return buf


def pipe_reader(f):
    def read():
        r, _, _ = select.select([f], [], [], 30)
        assert r, "no output for 30 s"
        return os.read(f.fileno(), 4096)
    return read


def finish(p, timeout=30):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_uart_reads_a_line_from_a_stdin_pipe():
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "uart=1", stdin=subprocess.PIPE)
    out = read_until(pipe_reader(p.stdout), b"uart ready\n")
    p.stdin.write(b"typed on stdin\n")
    p.stdin.flush()
    rc, rest, err = finish(p)
    assert rc == 0, (rc, out, rest, err)
    assert "uart echo: typed on stdin\n" in rest and "console: ok" in rest, rest


def test_uart_input_larger_than_the_fifo_is_not_lost():
    """60 bytes into a 16-byte FIFO: the VMM stops reading until the guest drains it."""
    line = b"".join(bytes([ord("a") + i % 26]) for i in range(60))
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "uart=1", stdin=subprocess.PIPE)
    read_until(pipe_reader(p.stdout), b"uart ready\n")   # the payload clears the FIFO before this
    p.stdin.write(line + b"\n")   # at once: the guest reads byte by byte
    p.stdin.flush()
    rc, out, err = finish(p)
    assert rc == 0, (rc, out, err)
    assert f"uart echo: {line.decode()}\n" in out, out


def test_uart_through_a_socket(tmp_path):
    sock = tmp_path / "serial.sock"
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "uart=1", "--serial", f"socket={sock}")
    s = connect_when_listening(sock, p)
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    got = read_until(lambda: s.recv(4096), b"uart ready\n")   # replayed if written before we connected
    s.sendall(b"over the socket\n")
    got += read_until(lambda: s.recv(4096), b"console: ok\n")
    rc, out, err = finish(p)
    assert rc == 0, (rc, out, err)
    assert b"uart echo: over the socket\n" in got, got
    assert out == "", out
    assert gone(sock)


def test_second_socket_client_is_refused(tmp_path):
    sock = tmp_path / "serial.sock"
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "uart=1", "--serial", f"socket={sock}")
    try:
        s1 = connect_when_listening(sock, p)
        read_until(lambda: s1.recv(4096), b"uart ready\n")
        s2 = connect_when_listening(sock, p)
        assert s2.recv(100) == b""     # closed at once
        s1.sendall(b"first\n")
        got = read_until(lambda: s1.recv(4096), b"console: ok\n")
        assert b"uart echo: first\n" in got
        rc, out, err = finish(p)
        assert rc == 0, (rc, out, err)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_virtio_console_through_a_socket_and_serial_to_a_file(tmp_path):
    sock = tmp_path / "console.sock"
    log = tmp_path / "serial.log"
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "vcon=1", "--serial", f"file={log}",
              "--console", f"socket={sock}")
    s = connect_when_listening(sock, p)
    got = read_until(lambda: s.recv(4096), b"vcon ready\n")
    s.sendall(b"a line longer than one sixteen-byte receive buffer\n")
    got += read_until(lambda: s.recv(4096), b"vcon echo: a line longer than one sixteen-byte receive buffer\n")
    rc, out, err = finish(p)
    assert rc == 0, (rc, out, err)
    assert "console: ok" in log.read_text()
    assert gone(sock)


def test_virtio_console_on_stdio_from_config(tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": CONSOLE, "memory": "32M", "cmdline": "vcon=1", "serial": "none",
                               "console": "stdio"}))
    p = start("--config", cfg, stdin=subprocess.PIPE)
    read_until(pipe_reader(p.stdout), b"vcon ready\n")
    p.stdin.write(b"via stdin\n")
    p.stdin.flush()
    rc, out, err = finish(p)
    assert rc == 0, (rc, out, err)
    assert "vcon echo: via stdin\n" in out, out


def test_virtio_console_to_a_file(tmp_path):
    """Output-only backend: the guest's transmitq lands in the file; with no input the payload
    waits, so it is stopped after the first line."""
    log = tmp_path / "console.log"
    p = start("--kernel", CONSOLE, "--memory", "32M", "--cmdline", "vcon=1", "--serial", "none",
              "--console", f"file={log}")
    try:
        wait_for(lambda: (log.exists() and "vcon ready" in log.read_text()) or p.poll() is not None,
                 what="vcon ready in the file")
        assert p.poll() is None, finish(p)
    finally:
        p.kill()
        p.wait()


def test_socket_removed_after_sigkill(tmp_path):
    sock = tmp_path / "serial.sock"
    csock = tmp_path / "console.sock"
    p = start("--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M", "--serial", f"socket={sock}",
              "--console", f"socket={csock}")
    wait_for(lambda: confined(p.pid) or p.poll() is not None, what="the sandbox (the watchers exist)")
    assert p.poll() is None, finish(p)
    assert sock.exists() and csock.exists()
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert gone(sock) and gone(csock), "socket files left behind after SIGKILL"


@pytest.mark.parametrize("args, message", [
    (["--serial", "socket="], "--serial: expected stdio, file=PATH, socket=PATH or none"),
    (["--serial", "tcp:1"], "--serial: expected"),
    (["--console", "bogus"], "--console: expected stdio, file=PATH, socket=PATH or none"),
    (["--console", "stdio"], "--console stdio: the serial port already uses stdio (the default)"),
    (["--serial", "stdio", "--console", "stdio"], "--console stdio: the serial port already uses stdio"),
    (["--serial", "socket=/nonexistent/dir/s.sock"], "--serial socket /nonexistent/dir/s.sock: bind"),
    (["--serial", "none", "--console", "socket=/nonexistent/dir/c.sock"], "--console socket"),
    (["--serial", "socket=REGULAR"], "the path exists and is not a socket"),
    (["--serial", "socket=" + "x" * 120], "longer than 107 bytes"),
])
def test_bad_console_specs_are_clear_errors(tmp_path, args, message):
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    args = [a.replace("REGULAR", str(regular)) for a in args]
    before = sorted(os.listdir(tmp_path))
    r = subprocess.run([VMM, "--kernel", CONSOLE, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert message in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(os.listdir(tmp_path)) == before
    assert regular.read_text() == "keep me"


def test_live_socket_is_not_taken_over(tmp_path):
    sock = tmp_path / "serial.sock"
    p = start("--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M", "--serial", f"socket={sock}")
    try:
        connect_when_listening(sock, p).close()
        r = subprocess.run([VMM, "--kernel", CONSOLE, "--serial", f"socket={sock}"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1 and "another process is listening" in r.stderr, r
        assert sock.exists()
    finally:
        p.kill()
        p.wait()


# ---- O_DIRECT disks (the virtio payload's blk=1 round trip) ----

SECTOR0 = bytes((i * 7 + 3) & 0xFF for i in range(512))
SECTOR1 = bytes((i * 13 + 1) & 0xFF for i in range(512))


@pytest.fixture
def direct_disk():
    """A 1 MiB disk on a file system that takes O_DIRECT (the build directory: on disk)."""
    d = tempfile.mkdtemp(prefix="direct-", dir=BUILD)
    p = os.path.join(d, "disk.img")
    with open(p, "wb") as f:
        f.write(SECTOR0 + bytes(1024 * 1024 - 512))
    try:
        fd = os.open(p, os.O_RDWR | os.O_DIRECT)
    except OSError as e:
        shutil.rmtree(d)
        pytest.skip(f"{BUILD}: O_DIRECT refused ({e})")
    os.close(fd)
    yield p
    shutil.rmtree(d)


def test_direct_disk_round_trip(direct_disk):
    r = subprocess.run([VMM, "--kernel", os.path.join(GUEST, "virtio.elf"), "--memory", "64M",
                        "--disk", f"{direct_disk},direct", "--cmdline", "blk=1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    assert "virtio: blk ok" in r.stdout, r
    with open(direct_disk, "rb") as f:
        data = f.read()
    assert data[512:1024] == SECTOR1 and data[:512] == SECTOR0


def test_direct_disk_from_config(tmp_path, direct_disk):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": os.path.join(GUEST, "virtio.elf"), "memory": "64M",
                               "cmdline": "blk=1", "disks": [f"{direct_disk},ro,direct"]}))
    r = subprocess.run([VMM, "--config", cfg], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 + 24, r     # read-only: the payload's write is refused
    assert "blk write status 0x00000001" in r.stdout, r


def test_direct_bad_option():
    r = subprocess.run([VMM, "--kernel", CONSOLE, "--disk", "/nonexistent.img,direct,fast"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and 'unknown option "fast"' in r.stderr, r
