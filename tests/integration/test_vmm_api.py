"""gureum-vmm's control API end to end: --api-socket starts gureum-vmm-api, which serves HTTP on a
unix socket and asks the VMM over a socketpair (src/vmm/README.md, "Control API"). Driven with
http.client over AF_UNIX against real VMs running the tests/guest payloads."""
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from vmmtest import GUEST, VMM, confined, gone, needs_kvm, wait_for

FORCED_STOP = 6

pytestmark = needs_kvm


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def request(path, method, url, body=None):
    """One request on a new connection; returns (status, parsed JSON body or None, headers)."""
    if body is None:
        c = UnixHTTPConnection(str(path))
        try:
            c.request(method, url)
            r = c.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None), dict(r.getheaders())
        finally:
            c.close()
    # With a body, the whole request goes out in one write: the server answers some errors (405)
    # from the headers alone and closes, which would make http.client's separate body write fail.
    data = (body if isinstance(body, (bytes, str)) else json.dumps(body))
    data = data.encode() if isinstance(data, str) else data
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(f"{method} {url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        r = http.client.HTTPResponse(s)
        r.begin()
        raw = r.read()
        return r.status, (json.loads(raw) if raw else None), dict(r.getheaders())
    finally:
        s.close()


def api_children(pid):
    """The gureum-vmm-api processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid and cmd and cmd[0].endswith(b"gureum-vmm-api"):
            out.append(int(d))
    return out


def alive(pid):
    """Running (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


class VM:
    def __init__(self, tmp_path, payload, *args, env=None):
        self.sock = tmp_path / "api.sock"
        self.serial = tmp_path / "serial.log"
        self.p = subprocess.Popen([VMM, "--kernel", os.path.join(GUEST, payload), "--memory", "32M",
                                   "--serial", f"file={self.serial}", "--api-socket", str(self.sock), *args],
                                  stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: self.sock.exists() or self.p.poll() is not None, what="the API socket")
            assert self.p.poll() is None, self.p.stderr.read()
            children = api_children(self.p.pid)
            assert len(children) == 1, children
            self.api_pid = children[0]
            # Ready: the API process is confined (so its socket watcher exists: the filter comes
            # after it) and answers (the socket file exists from bind, a moment before listen).
            wait_for(lambda: confined(self.api_pid), what="the API process's filter")
            wait_for(self.answers, what="the first answer")
        except BaseException:
            self.p.kill()
            raise

    def answers(self):
        try:
            return self.get("/vm")[0] == 200
        except (ConnectionRefusedError, FileNotFoundError):
            return False

    def get(self, url):
        return request(self.sock, "GET", url)

    def put(self, url, body):
        return request(self.sock, "PUT", url, body)

    def exits(self):
        s, m, _ = self.get("/metrics")
        assert s == 200, m
        return sum(m["vm_exits"].values())

    def serial_text(self):
        return self.serial.read_text() if self.serial.exists() else ""

    def wait(self, timeout=30):
        rc = self.p.wait(timeout=timeout)
        return rc, self.p.stderr.read()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def vms():
    started = []
    yield lambda *a, **k: started.append(VM(*a, **k)) or started[-1]
    for v in started:
        v.kill()


def test_status_while_running(tmp_path, vms):
    vm = vms(tmp_path, "idle.elf", "--cpus", "2")
    status, body, headers = vm.get("/vm")
    assert status == 200, body
    assert body["state"] == "running" and body["vcpus"] == 2 and body["memory"] == 32 << 20, body
    assert 0 <= body["uptime"] < 60, body
    assert headers["Content-Type"] == "application/json"
    # The socket is the API process's, mode 0600; the API process is confined too.
    assert (os.stat(vm.sock).st_mode & 0o777) == 0o600
    with open(f"/proc/{vm.api_pid}/status") as f:
        st = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, st
    time.sleep(0.2)
    _, later, _ = vm.get("/vm")
    assert later["uptime"] > body["uptime"], (body, later)


def test_pause_freezes_the_guest_and_resume_continues(tmp_path, vms):
    vm = vms(tmp_path, "pwrbtn.elf")
    wait_for(lambda: "...." in vm.serial_text(), what="the payload's progress dots")
    status, body, _ = vm.put("/vm/actions", {"action": "pause"})
    assert status == 204 and body is None
    assert vm.get("/vm")[1]["state"] == "paused"
    # Paused means no vCPU runs guest code: neither the serial log nor the exit counters move.
    text, exits = vm.serial_text(), vm.exits()
    time.sleep(0.5)
    assert vm.serial_text() == text
    assert vm.exits() == exits
    status, body, _ = vm.put("/vm/actions", {"action": "pause"})
    assert status == 409 and "already paused" in body["error"], body
    status, _, _ = vm.put("/vm/actions", {"action": "resume"})
    assert status == 204
    assert vm.get("/vm")[1]["state"] == "running"
    wait_for(lambda: len(vm.serial_text()) > len(text) + 10, what="progress after resume")
    assert vm.exits() > exits
    status, body, _ = vm.put("/vm/actions", {"action": "resume"})
    assert status == 409 and "not paused" in body["error"], body


def test_metrics_show_exits_and_device_counters(tmp_path, vms):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    vm = vms(tmp_path, "pwrbtn.elf", "--disk", str(disk), "--rng", "--console", f"file={tmp_path / 'con.log'}")
    wait_for(lambda: "...." in vm.serial_text(), what="the payload's progress dots")
    status, m, _ = vm.get("/metrics")
    assert status == 200, m
    assert m["vm_exits"]["mmio"] > 100 and m["vm_exits"]["io"] > 10, m   # GED polls, serial output
    assert set(m["devices"]) == {"blk0", "console", "rng", "serial", "ged"}, m
    assert m["devices"]["blk0"] == {"reads": 0, "writes": 0, "flushes": 0, "errors": 0, "bytes_read": 0,
                                    "bytes_written": 0}, m
    assert m["devices"]["rng"] == {"requests": 0, "bytes": 0}, m
    assert m["devices"]["ged"]["events"] == 0 and m["devices"]["ged"]["reads"] > 100, m
    assert m["devices"]["console"] == {"bytes_in": 0, "bytes_out": 0, "bytes_dropped": 0, "clients": 0,
                                       "input_dropped": 0}, m
    serial = m["devices"]["serial"]
    assert serial["bytes_out"] >= len("....") and serial["bytes_in"] == 0 and serial["bytes_dropped"] == 0, m


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        b = s.recv(n - len(buf))
        assert b, buf
        buf += b
    return buf


def test_metrics_of_vsock_move_with_its_traffic(tmp_path, vms):
    """vsock.elf connects to the host (port 1234: "hello from the guest", answered "ack: ..."), then
    listens on port 52, where the host connects and has a message echoed."""
    vsock = tmp_path / "v.sock"
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind(f"{vsock}_1234")
    host.listen(1)
    host.settimeout(60)
    vm = vms(tmp_path, "vsock.elf", "--memory", "64M", "--vsock", f"cid=3,socket={vsock}",
             "--cmdline", "vsock_cid=3 vsock_port=1234 vsock_listen=52")
    c, _ = host.accept()
    with c:
        msg = recv_exactly(c, len(b"hello from the guest"))
        c.sendall(b"ack: " + msg)
        assert c.recv(10) == b""          # the guest shut its side down
    host.close()
    wait_for(lambda: "vsock: listening" in vm.serial_text(), what="the guest to listen")
    m = vm.get("/metrics")[1]["devices"]["vsock"]
    assert m["conns_opened"] == 1 and m["conns_refused"] == 0 and m["bad_packets"] == 0, m
    assert m["bytes_from_guest"] == len(msg) and m["bytes_to_guest"] == len(b"ack: " + msg), m
    assert m["pkts_from_guest"] >= 3 and m["pkts_to_guest"] >= 3, m   # request, data, shutdown; response, data, rst
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as h:
        h.settimeout(30)
        h.connect(str(vsock))
        h.sendall(b"CONNECT 52\n")
        ok = b""
        while not ok.endswith(b"\n"):
            ok += recv_exactly(h, 1)
        assert ok.startswith(b"OK "), ok
        h.sendall(b"echo me")
        assert recv_exactly(h, 7) == b"echo me"
        later = vm.get("/metrics")[1]["devices"]["vsock"]
        assert later["conns_opened"] == 2 and later["connections"] == 1, later
        assert later["bytes_from_guest"] == m["bytes_from_guest"] + len(b"echo me"), later
        assert later["bytes_to_guest"] == m["bytes_to_guest"] + len(b"echo me"), later
    rc, err = vm.wait()
    assert rc == 0, (err, vm.serial_text())


def test_stop_with_the_power_button(tmp_path, vms):
    vm = vms(tmp_path, "pwrbtn.elf", "--cpus", "2")
    wait_for(lambda: "...." in vm.serial_text(), what="the payload waiting")
    status, body, _ = vm.put("/vm/actions", {"action": "stop", "timeout": 30})
    assert status == 202 and body == {"state": "stopping"}, body
    rc, err = vm.wait()
    assert rc == 0, err
    assert "power button pressed" in vm.serial_text()
    assert not vm.sock.exists()
    # It has closed everything (the VMM saw that) and is ending; the kernel reaps it.
    wait_for(lambda: not alive(vm.api_pid), timeout=5, what="the API process to end")


def test_stop_is_forced_when_the_guest_ignores_it(tmp_path, vms):
    vm = vms(tmp_path, "idle.elf")
    t0 = time.monotonic()
    status, body, _ = vm.put("/vm/actions", {"action": "stop", "timeout": 0.5})
    assert status == 202, body
    assert vm.get("/vm")[1]["state"] == "stopping"
    status, body, _ = vm.put("/vm/actions", {"action": "stop"})
    assert status == 409 and "already stopping" in body["error"], body
    status, body, _ = vm.put("/vm/actions", {"action": "pause"})
    assert status == 409, body
    rc, err = vm.wait()
    elapsed = time.monotonic() - t0
    assert rc == FORCED_STOP, err
    assert "stopped by force" in err, err
    assert elapsed > 0.4, elapsed        # not before the timeout (how much later depends on the load)
    assert not vm.sock.exists()
    # It has closed everything (the VMM saw that) and is ending; the kernel reaps it.
    wait_for(lambda: not alive(vm.api_pid), timeout=5, what="the API process to end")


def test_stop_of_a_paused_vm_resumes_it_for_the_power_button(tmp_path, vms):
    vm = vms(tmp_path, "pwrbtn.elf")
    wait_for(lambda: "...." in vm.serial_text(), what="the payload waiting")
    assert vm.put("/vm/actions", {"action": "pause"})[0] == 204
    assert vm.put("/vm/actions", {"action": "stop", "timeout": 30})[0] == 202
    rc, err = vm.wait()
    assert rc == 0, err


@pytest.mark.parametrize("irqchip", ["kernel", "split"])
def test_power_button_with_either_irqchip(tmp_path, vms, irqchip):
    """The payload checks that the GED's interrupt reached the local APIC through the I/O APIC."""
    env = dict(os.environ, GUREUM_VMM_IRQCHIP=irqchip)
    vm = vms(tmp_path, "pwrbtn.elf", env=env)
    wait_for(lambda: "...." in vm.serial_text(), what="the payload waiting")
    assert vm.put("/vm/actions", {"action": "stop"})[0] == 202
    rc, err = vm.wait()
    assert rc == 0, (err, vm.serial_text())


@pytest.mark.parametrize("method, url, body, code, needle", [
    ("GET", "/nope", None, 404, "no such route: /nope"),
    ("GET", "/vm/actions", None, 405, "use PUT"),
    ("POST", "/vm", "{}", 405, "not allowed"),
    ("PUT", "/vm/actions", {"action": "reboot"}, 400, 'unknown action "reboot"'),
    ("PUT", "/vm/actions", {"action": "pause", "timeout": 1}, 400, "only the stop action"),
    ("PUT", "/vm/actions", {"action": "stop", "timeout": -1}, 400, "timeout: expected a number of seconds"),
    ("PUT", "/vm/actions", {"action": "stop", "timeout": "1"}, 400, "timeout: expected a number of seconds"),
    ("PUT", "/vm/actions", {"action": "stop", "timeout": 3601}, 400, "from 0 to 3600"),
    ("PUT", "/vm/actions", "{\"action\": pause}", 400, "malformed JSON"),
    ("PUT", "/vm/actions", {"verb": "stop"}, 400, 'unknown key "verb"'),
])
def test_bad_requests(tmp_path, vms, method, url, body, code, needle):
    vm = vms(tmp_path, "idle.elf")
    status, resp, _ = request(vm.sock, method, url, body)
    assert status == code and needle in resp["error"], (status, resp)
    assert vm.get("/vm")[1]["state"] == "running"   # nothing happened to the VM


def test_socket_removed_after_normal_exit(tmp_path, vms):
    vm = vms(tmp_path, "idle.elf")
    vm.put("/vm/actions", {"action": "stop", "timeout": 0})
    rc, err = vm.wait()
    assert rc == FORCED_STOP, err
    # Removed before gureum-vmm exits (it waits for the API process), not some time after.
    assert not vm.sock.exists()
    # It has closed everything (the VMM saw that) and is ending; the kernel reaps it.
    wait_for(lambda: not alive(vm.api_pid), timeout=5, what="the API process to end")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_socket_and_api_process_gone_after_the_vmm_is_killed(tmp_path, vms, sig):
    vm = vms(tmp_path, "idle.elf")
    assert vm.get("/vm")[0] == 200
    os.kill(vm.p.pid, sig)
    vm.p.wait(timeout=30)
    wait_for(lambda: not alive(vm.api_pid), timeout=10, what="the API process to end")
    assert gone(vm.sock), "the socket file was not removed"


def test_vmm_survives_the_api_process_dying(tmp_path, vms):
    vm = vms(tmp_path, "pwrbtn.elf")
    os.kill(vm.api_pid, signal.SIGKILL)
    assert gone(vm.sock), "the watcher did not remove the socket"
    time.sleep(0.2)
    assert vm.p.poll() is None, vm.p.stderr.read()


def test_api_socket_in_a_missing_directory(tmp_path):
    sock = tmp_path / "missing" / "api.sock"
    r = subprocess.run([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M", "--serial", "none",
                        "--api-socket", str(sock)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert f"--api-socket {sock}" in r.stderr and "No such file or directory" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr      # one clear line
    assert not (tmp_path / "missing").exists()
    assert not [p for p in os.listdir("/proc") if p.isdigit() and "gureum-vmm-api" in _cmdline(p)
                and str(sock) in _cmdline(p)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_live_socket_is_refused(tmp_path, vms):
    vm = vms(tmp_path, "idle.elf")
    r = subprocess.run([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M", "--serial", "none",
                        "--api-socket", str(vm.sock)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "another process is listening on it" in r.stderr, r
    assert vm.get("/vm")[0] == 200   # the first VM's socket is untouched


def test_api_socket_from_config_file(tmp_path, vms):
    sock = tmp_path / "cfg.sock"
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": os.path.join(GUEST, "idle.elf"), "memory": "32M", "serial": "none",
                               "api_socket": str(sock)}))
    p = subprocess.Popen([VMM, "--config", str(cfg)], stderr=subprocess.PIPE, text=True)
    try:
        def answers():
            try:
                return request(sock, "GET", "/vm")[0] == 200
            except (ConnectionRefusedError, FileNotFoundError):
                assert p.poll() is None, p.stderr.read()
                return False
        wait_for(answers, what="the API's first answer")
        status, body, _ = request(sock, "GET", "/vm")
        assert status == 200 and body["state"] == "running", (status, body)
        assert request(sock, "PUT", "/vm/actions", {"action": "stop", "timeout": 0})[0] == 202
        assert p.wait(timeout=30) == FORCED_STOP
        assert not sock.exists()
    finally:
        p.kill()
        p.wait()


def test_missing_api_program_is_a_clear_error(tmp_path):
    env = dict(os.environ, GUREUM_VMM_API=str(tmp_path / "no-such-program"))
    r = subprocess.run([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M", "--serial", "none",
                        "--api-socket", str(tmp_path / "api.sock")], capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 1 and "no-such-program" in r.stderr and "GUREUM_VMM_API" in r.stderr, r
    assert not (tmp_path / "api.sock").exists()
