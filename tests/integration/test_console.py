"""--console-socket: the runtime sends the pty master over a unix socket (SCM_RIGHTS)."""
import os
import select
import socket
import time

import pytest

from helpers import TIMEOUT, wait_for


class ConsoleSocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.master = None

    def receive(self):
        """The runtime has connected and sent the fd by now (it is queued in the backlog)."""
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            assert len(fds) == 1, f"expected one fd, got {fds} (msg {msg!r})"
        self.master = fds[0]
        return self.master

    def close(self):
        if self.master is not None:
            os.close(self.master)
        self.sock.close()


def read_until(fd, needle, timeout=TIMEOUT):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r} on the pty; got {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: slave side closed
                break
            if not chunk:
                break
            buf += chunk
    assert needle.encode() in buf, f"{needle!r} not in {buf!r}"
    return buf.decode(errors="replace")


@pytest.fixture
def console(workdir):
    c = ConsoleSocket(os.path.join(workdir, "console.sock"))
    yield c
    c.close()


def test_console_socket_pty(rt, bundle, cid, console):
    b = bundle("sh")
    b.process["terminal"] = True
    rt("create", "--bundle", b, "--console-socket", console.path, cid)
    master = console.receive()
    assert os.isatty(master)
    rt("start", cid)
    os.write(master, b"tty\n")
    read_until(master, "/dev/pts/0")
    os.write(master, b"echo hel''lo-$((1+2))\n")
    read_until(master, "hello-3")
    os.write(master, b"[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; [ -c /dev/console ] && echo con-ok\n")
    # Both lines may come in one read: wait for the last one and look for both.
    out = read_until(master, "con-ok")
    assert "all-tty" in out, out
    os.write(master, b"exit 0\n")
    rt.wait_status(cid, "stopped")


def test_console_window_and_signals(rt, bundle, cid, console):
    """The pty is the controlling terminal: consoleSize applies, and ^C written to the master
    reaches the container's foreground process group as SIGINT (here caught by a trap whose
    output, computed by the shell, the terminal's echo of "^C" cannot imitate)."""
    # The trap is set before "stty size" prints, so no ^C can come before it.
    b = bundle("sh", "-c", 'trap "echo got-int-$((1+1))" INT; stty size; while :; do sleep 0.1; done')
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 33, "width": 111}
    rt("create", "--bundle", b, "--console-socket", console.path, cid)
    master = console.receive()
    rt("start", cid)
    read_until(master, "33 111")
    # Repeated until the trap's line shows (bounded by TIMEOUT): no speed is assumed.
    deadline = time.monotonic() + TIMEOUT
    out = b""
    while b"got-int-2" not in out:
        assert time.monotonic() < deadline, f"^C did not reach the container: {out!r}"
        os.write(master, b"\x03")
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                out += os.read(master, 4096)
            except OSError as e:  # EIO: every slave closed, the container is gone
                raise AssertionError(f"the container exited: {out!r}") from e
    rt("delete", "--force", cid)


def test_exec_tty_console_socket(rt, bundle, cid, workdir):
    b = bundle("sleep", "1000")
    rt.start_detached(b, cid)
    c = ConsoleSocket(os.path.join(workdir, "exec.sock"))
    try:
        pidfile = os.path.join(workdir, "exec.pid")
        rt("exec", "--tty", "--detach", "--console-socket", c.path, "--pid-file", pidfile, cid, "sh")
        master = c.receive()
        os.write(master, b"tty; echo x$((6*7))\n")
        out = read_until(master, "x42")
        assert "/dev/pts/" in out
        os.write(master, b"exit\n")
    finally:
        c.close()


@pytest.mark.gureum_only  # runc needs the caller's stdin to be a terminal here
def test_foreground_terminal_failure_does_not_hang(rt, bundle, cid):
    """run with process.terminal and no --console-socket relays the pty itself; when the init
    fails before sending the pty (here a failing createContainer hook), run reports that error
    at once instead of waiting for a pty forever, and leaves nothing behind."""
    from helpers import assert_no_residue
    b = bundle("true")
    b.process["terminal"] = True
    b.config["hooks"] = {"createContainer": [{"path": "/bin/false"}]}
    r = rt.run(b, cid, check=False, input="")
    assert r.returncode != 0, r
    assert "createContainer" in r.stderr, r
    assert_no_residue(rt, cid, str(b))


def test_foreground_terminal_follows_window_size(rt, bundle, cid):
    """A foreground run with process.terminal relays the caller's terminal: the container sees
    its window size, and a resize (SIGWINCH to the runtime) reaches the container's pty."""
    import fcntl
    import pty
    import signal
    import struct
    import subprocess
    import termios
    b = bundle("sh", "-c", "stty size; while read x; do stty size; done")
    b.process["terminal"] = True
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen([rt.binary, "--root", rt.root, "run", "--bundle", os.fspath(b), cid],
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        read_until(master, "30 100")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(p.pid, signal.SIGWINCH)
        # The resize is asynchronous: ask again until it shows (bounded by TIMEOUT).
        deadline, seen = time.monotonic() + TIMEOUT, b""
        while b"40 120" not in seen and time.monotonic() < deadline:
            os.write(master, b"\n")
            r, _, _ = select.select([master], [], [], 0.5)
            if r:
                seen += os.read(master, 4096)
        assert b"40 120" in seen, seen
        os.write(master, b"\x04")  # EOF ends the loop
        assert p.wait(timeout=TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
