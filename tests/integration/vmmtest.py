"""What the gureum-vmm tests (test_vmm*.py) share: where the build and the guest payloads are, running
gureum-vmm, and waiting for things. The machine may be loaded: waits poll with generous deadlines and
never assume how fast anything is."""
import os
import socket
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
VMM = os.environ.get("GUREUM_VMM", os.path.join(BUILD, "src", "vmm", "gureum-vmm"))
GUEST = os.path.join(BUILD, "tests", "guest")

needs_kvm = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                               reason="/dev/kvm is not available: gureum-vmm needs KVM")


def guest(name):
    """The path of a tests/guest payload ("hello.elf")."""
    return os.path.join(GUEST, name)


def vmm(*args, timeout=60, **kw):
    """Runs gureum-vmm to its end (text output captured)."""
    return subprocess.run([VMM, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(cond, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(path, timeout=10):
    """Whether path is gone within timeout. Socket files are removed when gureum-vmm ends normally,
    but after a kill by its watcher process a moment later."""
    try:
        wait_for(lambda: not os.path.lexists(path), timeout=timeout)
        return True
    except AssertionError:
        return False


def confined(pid):
    """Whether pid runs under its seccomp filter: gureum-vmm is then set up (its socket watchers,
    forked before the filter, exist). False once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split() == ["Seccomp:", "2"] for line in f)
    except OSError:
        return False


def connect_when_listening(path, p=None, timeout=30):
    """A client socket connected to the unix socket path, once it accepts connections (the file
    exists from bind, a moment before listen). p: the gureum-vmm Popen, which must keep running."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
            s.settimeout(30)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
        assert p is None or p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, f"{path} never accepted a connection"
        time.sleep(0.02)
