#!/usr/bin/env python3
"""bench/vm.py: VM launch to agent-ready, gureum (QEMU engine) against plain QEMU, in one run.

  gureum      `gureum launch busybox NAME --vm -c network=none` (the CLI, against a gureumd of its
              own) until the guest agent's first frame, HELLO, has been read from
              RUN/instances/NAME/agent.0.sock: the moment an exec could start. Everything gureum
              does is in it: the CLI, the API, the root disk built from the image, the
              per-instance initramfs, gureum-supervisor, QEMU, the boot, gureum-init, the agent.
  plain qemu  the QEMU command line gureum ran (read once from /proc/PID/cmdline of a warm-up
              instance), with its run and state paths pointed at a temp dir, on copies of that
              instance's initrd.img and pristine root.img: the same kernel, initramfs, disk,
              machine and devices, started directly (subprocess), until HELLO on its agent.0.sock.

Both sides are NIC-less (network=none: gureum makes no tap, and the guest configures no NIC), so
no side has a device the other lacks. Runs alternate gureum and plain qemu, so drift in the
machine's load hits both; each gureum instance is force-deleted, each plain qemu killed, untimed.

Where KVM is hardware-assisted (not PVM), a second part does the same for vm.engine=gureum-vmm
against plain qemu (with KVM, as gureum's QEMU engine would run it there); elsewhere it prints
that it is skipped and why.

Not a test: nothing here passes or fails. Run as root after a build:
    /usr/bin/python3 bench/vm.py [--runs 5] [--timeout 180]
GUREUM_BUILD names the meson build (default build/): its gureumd, gureum and gureum-init (which
must be static; GUREUM_INIT overrides it). Needs qemu-system-x86_64 and a guest kernel
(/var/cache/gureum/kernel, scripts/fetch-kernel.sh).
Goals (issue 7): gureum within 100 ms of plain qemu; gureum-vmm <= 0.5x qemu on hardware KVM.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from daemon import BUILD, Gureumd  # noqa: E402  (the test harness: gureumd in its own netns)
from vmhost import pvm_reason  # noqa: E402

GUREUM = os.environ.get("GUREUM_CLI", os.path.join(BUILD, "src", "cli", "gureum"))
KERNEL_DIR = os.environ.get("GUREUM_KERNEL_DIR", "/var/cache/gureum/kernel")
QEMU_NAME = "qemu-system-x86_64"
SETSID = shutil.which("setsid") or "/usr/bin/setsid"
PREFIX = "bench-vm"
HELLO = 13             # docs/guest-agent.md: the agent's first frame on a connection
MAX_FRAME = 1 << 20


class BenchGureumd(Gureumd):
    """The harness's gureumd in a session of its own (setsid: it is no process group leader, so
    it execs without forking and its pid stays the harness's), so a Ctrl-C at the terminal
    reaches only this script, which deletes the instances through it before stopping it."""

    def command(self):
        return [SETSID, *super().command()]


def static_init():
    """GUREUM_INIT, else the build's gureum-init if it is static (it is /init of the initramfs)."""
    path = os.environ.get("GUREUM_INIT") or os.path.join(BUILD, "src", "guest", "gureum-init")
    if not os.path.exists(path):
        return None, f"no gureum-init at {path}"
    r = subprocess.run(["file", "-b", path], capture_output=True, text=True)
    if r.returncode == 0 and "statically linked" not in r.stdout and "static-pie" not in r.stdout:
        return None, f"{path} is not static (an ASan build?): set GUREUM_INIT to a static one"
    return path, None


# ---- agent-ready: the first frame (HELLO) on an agent port ---------------------------------------

def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def wait_hello(path, deadline, alive, what):
    """Connects to the unix socket path (retrying every 2 ms until the engine listens), reads one
    frame and returns (time.perf_counter() when it was read, when the first connect succeeded:
    the engine listened, its JSON). An EOF before a frame
    (a connection the engine dropped) reconnects. alive() -> None while the launcher may still
    get there, else a message why it cannot (raised)."""
    t_listen = None
    while True:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: no HELLO on {path} in time")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            try:
                s.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                why = alive()
                if why:
                    raise RuntimeError(f"{what}: {why}")
                time.sleep(0.002)
                continue
            if t_listen is None:
                t_listen = time.perf_counter()
            s.settimeout(max(0.1, deadline - time.perf_counter()))
            try:
                hdr = _recv_exact(s, 5)
            except socket.timeout:
                raise TimeoutError(f"{what}: connected to {path}, no frame in time")
            if hdr is None:
                continue
            length, ftype = struct.unpack(">IB", hdr)
            if not 1 <= length <= MAX_FRAME:
                raise RuntimeError(f"{what}: bad frame length {length} on {path}")
            payload = _recv_exact(s, length - 1)
            t = time.perf_counter()
            if payload is None:
                continue
            if ftype != HELLO:
                raise RuntimeError(f"{what}: first frame on {path} is type {ftype}, not HELLO")
            return t, t_listen, json.loads(payload)
        finally:
            s.close()


# ---- the gureum side --------------------------------------------------------------------------

class GureumSide:
    def __init__(self, d, timeout, config=()):
        self.d = d
        self.timeout = timeout
        self.cli = [GUREUM, "--socket", d.socket_path]
        self.config = [a for kv in config for a in ("-c", kv)]

    def agent_socket(self, name):
        # Both engines: the agent's port 0, a unix socket in the instance's run directory. (If
        # gureum-vmm ends up serving the agent elsewhere, vsock for one, this is what changes.)
        return os.path.join(self.d.run_dir, "instances", name, "agent.0.sock")

    def cli_run(self, *args):
        r = subprocess.run(self.cli + list(args), capture_output=True, text=True, timeout=self.timeout)
        if r.returncode != 0:
            raise RuntimeError(f"gureum {' '.join(args)}: exit {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def launch(self, name, argv_tail=("--vm",)):
        """Times one launch to agent-ready; returns (seconds to HELLO, to the engine listening on
        the agent socket, until the CLI returned)."""
        cmd = self.cli + ["launch", "busybox", name, *argv_tail, "-c", "network=none", *self.config]
        done = {}
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def reap():
            out, err = p.communicate()
            done["t"], done["err"] = time.perf_counter(), (err or out).decode(errors="replace").strip()
        th = threading.Thread(target=reap, daemon=True)
        th.start()

        def alive():
            if "t" in done and p.returncode != 0:
                return f"gureum launch: exit {p.returncode}: {done['err']}"
            return None
        t, tl, _ = wait_hello(self.agent_socket(name), t0 + self.timeout, alive, f"gureum launch {name}")
        th.join(self.timeout)
        if "t" not in done:
            raise RuntimeError(f"gureum launch {name}: agent ready but the CLI did not return")
        if p.returncode != 0:
            raise RuntimeError(f"gureum launch {name}: exit {p.returncode}: {done['err']}")
        return t - t0, tl - t0, done["t"] - t0

    def start(self, name):
        """The untimed warm-up's start of a created instance; waits for HELLO."""
        t0 = time.perf_counter()
        self.cli_run("start", name)
        wait_hello(self.agent_socket(name), t0 + self.timeout, lambda: None, f"gureum start {name}")

    def delete(self, name):
        self.cli_run("delete", "--force", name)

    def qemu_argv(self, name):
        """The command line of the instance's QEMU (/proc/PID/cmdline)."""
        mark = os.path.join(self.d.run_dir, "instances", name) + "/"
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == QEMU_NAME and any(mark in a for a in argv):
                return argv
        raise RuntimeError(f"no {QEMU_NAME} process with {mark} in its arguments")


# ---- the plain QEMU side ----------------------------------------------------------------------

class PlainQemu:
    """gureum's QEMU command line, its paths rewritten to tmp; one run at a time."""

    def __init__(self, argv, gureum_run, gureum_state, tmp, timeout):
        self.tmp = tmp
        self.timeout = timeout
        self.proc = None
        self.listen = []
        self.pristine = os.path.join(tmp, "root.pristine.img")
        self.disk = os.path.join(tmp, "root.img")
        self.initrd = os.path.join(tmp, "initrd.img")
        self.dropped = []
        out = []
        skip = 0
        for i, a in enumerate(argv):
            if skip:
                skip -= 1
                continue
            # A NIC (there should be none: network=none); both sides would have to have it.
            if a == "-netdev" or (a == "-device" and i + 1 < len(argv) and argv[i + 1].startswith("virtio-net")):
                self.dropped += argv[i:i + 2]
                skip = 1
                continue
            a = a.replace(gureum_state + "/initrd.img", self.initrd)
            a = a.replace(gureum_state + "/root.img", self.disk)
            a = a.replace(gureum_run + "/", "@RUN@/")
            out.append(a)
        if any(gureum_state in a or gureum_run in a for a in out):
            raise RuntimeError(f"gureum's QEMU command line has paths this bench does not know: {out}")
        self.template = out

    def run(self, i):
        """Times one boot to agent-ready; returns seconds (and appends the seconds until QEMU
        listened on the agent socket to self.listen)."""
        rd = os.path.join(self.tmp, f"run-{i}")
        os.mkdir(rd, 0o700)
        # Untimed: a fresh copy of the never-booted disk (the guest writes to it).
        subprocess.run(["cp", "--sparse=always", "--reflink=auto", self.pristine, self.disk], check=True)
        argv = [a.replace("@RUN@", rd) for a in self.template]
        log = open(os.path.join(self.tmp, f"console-{i}.log"), "wb")
        try:
            t0 = time.perf_counter()
            # Its own session: a Ctrl-C at the terminal goes to this script, which kills it.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

            def alive():
                if self.proc.poll() is not None:
                    return f"qemu exited with {self.proc.returncode} (console: {log.name})"
                return None
            t, tl, _ = wait_hello(os.path.join(rd, "agent.0.sock"), t0 + self.timeout, alive,
                                  f"plain qemu run {i}")
            self.listen.append(tl - t0)
            return t - t0
        finally:
            self.kill()
            log.close()
            shutil.rmtree(rd, ignore_errors=True)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        self.proc = None


# ---- report -----------------------------------------------------------------------------------

def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def other_qemus(ours=()):
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                a0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(a0).decode(errors="replace") in (QEMU_NAME, "gureum-vmm") and int(pid) not in ours:
            n += 1
    return n


def med_ms(xs):
    return f"{statistics.median(xs) * 1e3:.1f} ms"


def table(rows, extra=None):
    """rows: (label, [seconds]); the first is compared with the second."""
    print(f"{'':34}{'median ms':>11}{'mean ms':>11}{'min ms':>11}{'max ms':>11}")
    for label, xs in rows:
        print(f"{label:34}{statistics.median(xs) * 1e3:>11.1f}{statistics.mean(xs) * 1e3:>11.1f}"
              f"{min(xs) * 1e3:>11.1f}{max(xs) * 1e3:>11.1f}")
    (la, a), (lb, b) = rows[0], rows[1]
    ma, mb = statistics.median(a), statistics.median(b)
    pairs = [x - y for x, y in zip(a, b)]
    print(f"difference (median {la.split()[0]} - median {lb.split()[0]}): {(ma - mb) * 1e3:+.1f} ms; "
          f"median of the per-run differences: {statistics.median(pairs) * 1e3:+.1f} ms")
    print(f"ratio (medians): {ma / mb:.3f}")
    if extra:
        print(extra)


def alternate(runs, first, second, label):
    a, b = [], []
    for i in range(runs):
        x = first(i)
        y = second(i)
        a.append(x)
        b.append(y)
        print(f"  {label} run {i + 1}/{runs}: {x * 1e3:.1f} ms vs {y * 1e3:.1f} ms   (load {load()})", flush=True)
    return a, b


# ---- main -------------------------------------------------------------------------------------

def qemu_part(d, tmp, runs, timeout):
    g = GureumSide(d, timeout)
    # Warm-up, untimed: the busybox image and the common initramfs are built at the first use.
    # Created first and started after, so its root disk is copied before any boot wrote to it.
    w = f"{PREFIX}-w"
    g.cli_run("launch", "busybox", w, "--vm", "-c", "network=none", "--empty")
    state = os.path.join(d.state_dir, "instances", w)
    pristine = os.path.join(tmp, "root.pristine.img")
    subprocess.run(["cp", "--sparse=always", "--reflink=auto", os.path.join(state, "root.img"), pristine], check=True)
    g.start(w)
    argv = g.qemu_argv(w)
    plain = PlainQemu(argv, os.path.join(d.run_dir, "instances", w), state, tmp, timeout)
    shutil.copyfile(os.path.join(state, "initrd.img"), plain.initrd)
    g.delete(w)
    plain.run("w")  # warm-up, untimed: QEMU's binary and the copies in the page cache
    plain.listen.clear()
    print("plain qemu: " + " ".join(plain.template).replace("@RUN@", "TMP/run-N"))
    if plain.dropped:
        print(f"  (dropped from it, so that neither side has a NIC: {' '.join(plain.dropped)})")
    print(f"  root disk {os.path.getsize(pristine) >> 20} MiB (sparse copy, fresh for every run), "
          f"initrd {os.path.getsize(plain.initrd) >> 10} KiB")

    listen, cli_times = [], []

    def gureum_run(i):
        name = f"{PREFIX}-{i}"
        hello, ls, cli = g.launch(name)
        listen.append(ls)
        cli_times.append(cli)
        g.delete(name)
        return hello
    g_times, q_times = alternate(runs, gureum_run, plain.run, "gureum vs plain qemu")
    return g_times, q_times, listen, cli_times, plain


def vmm_part(d, tmp, runs, timeout, plain):
    """gureum-vmm (vm.engine=gureum-vmm) against the same plain qemu: only on hardware KVM."""
    why = pvm_reason()
    if why:
        print(f"\ngureum-vmm vs qemu: skipped: {why}. Plain qemu here uses TCG; gureum-vmm needs hardware "
              f"virtualization (VT-x/AMD-V) to boot Linux.")
        return
    if "accel=kvm" not in " ".join(plain.template):
        print("\ngureum-vmm vs qemu: skipped: gureum's QEMU engine did not choose KVM on this host "
              "(see `gureum info` / vm.json): the comparison would be against TCG")
        return
    g = GureumSide(d, timeout, config=["vm.engine=gureum-vmm"])
    try:
        g.launch(f"{PREFIX}-vmm-w")  # warm-up; also whether the engine works at all
        g.delete(f"{PREFIX}-vmm-w")
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as e:
        print(f"\ngureum-vmm vs qemu: skipped: vm.engine=gureum-vmm does not launch to agent-ready here: {e}")
        return

    def vmm_run(i):
        name = f"{PREFIX}-vmm-{i}"
        hello, _, _ = g.launch(name)
        g.delete(name)
        return hello
    (a, b) = alternate(runs, vmm_run, lambda i: plain.run(f"k{i}"), "gureum-vmm vs plain qemu (KVM)")
    print(f"\nlaunch to agent-ready, gureum-vmm vs plain qemu (KVM), {runs} runs each, alternating")
    table([("gureum-vmm (CLI launch)", a), ("plain qemu (KVM)", b)], "goal: ratio <= 0.5")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed launches per side (default 5)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds one boot may take (TCG on 2 busy cores)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/vm.py: run as root (gureumd, namespaces)")
    if not shutil.which(QEMU_NAME):
        sys.exit(f"bench/vm.py: {QEMU_NAME} is not installed (apt-get install qemu-system-x86)")
    if not os.path.exists(os.path.join(KERNEL_DIR, "current")):
        sys.exit(f"bench/vm.py: no guest kernel in {KERNEL_DIR} (scripts/fetch-kernel.sh)")
    init, why = static_init()
    if not init:
        sys.exit(f"bench/vm.py: {why}")

    # SIGINT (also when inherited as ignored), SIGTERM and SIGHUP end the run through the finally
    # below. gureumd and the plain qemu are in sessions of their own: a Ctrl-C reaches neither.
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)

    print(f"{os.cpu_count()} CPUs, load {load()}, {other_qemus()} other qemu/gureum-vmm processes running; "
          f"build {BUILD}")
    load_before = load()
    d = BenchGureumd(env={"GUREUM_INIT": init})
    tmp = tempfile.mkdtemp(prefix="bench-vm-", dir="/tmp")
    plain = None
    try:
        d.start()
        g_times, q_times, g_listen, cli_times, plain = qemu_part(d, tmp, a.runs, a.timeout)
        print(f"\nlaunch to agent-ready (first HELLO frame on agent.0.sock), {a.runs} runs each, alternating; "
              f"both NIC-less (network=none); load {load_before} before, {load()} after")
        table([("gureum (CLI launch, QEMU engine)", g_times), ("plain qemu (same argv)", q_times)],
              f"goal: difference <= 100 ms.\n"
              f"medians: QEMU listened on agent.0.sock after {med_ms(g_listen)} (gureum) and "
              f"{med_ms(plain.listen)} (plain); gureum's CLI returned after {med_ms(cli_times)}")
        vmm_part(d, tmp, a.runs, a.timeout, plain)
    finally:
        if plain:
            plain.kill()
        try:
            d.cleanup()  # force-deletes every instance, stops gureumd, deletes its netns; fails on residue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
