"""VM instances (issue 7) with the QEMU engine: the same API and CLI as containers.

On this kind of host (/dev/kvm is PVM: no hardware virtualization for an unmodified kernel) the
engine is QEMU with binary translation, and a VM boots Debian's cloud kernel
(/var/cache/gureum/kernel, scripts/fetch-kernel.sh) with gureum-init in ~2-5 s. gureum-init must
be a static binary: in the ASan+UBSan build it is not, so these tests use the normal build's
(GUREUM_INIT) and skip, saying why, when there is none.

Where KVM is hardware-assisted the same tests would run with gureum-vmm; the VM driver does not
run gureum-vmm yet (no agent transport for it), so test_gureum_vmm_engine says so and skips.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from daemon import BUILD, IP, REPO, TIMEOUT, Gureumd
from helpers import wait_for
from storage import Cli, create, run_op, sh

KERNEL_DIR = os.environ.get("GUREUM_KERNEL_DIR", "/var/cache/gureum/kernel")
QEMU = shutil.which("qemu-system-x86_64")
BOOT_TIMEOUT = max(TIMEOUT, 120)  # TCG on a loaded 2-core machine


def static_init():
    """A gureum-init that can be /init in an initramfs (static), or None."""
    for build in (BUILD, os.path.join(REPO, "build")):
        path = os.path.join(build, "src", "guest", "gureum-init")
        if os.path.exists(path):
            r = subprocess.run(["file", "-b", path], capture_output=True, text=True)
            if r.returncode != 0 or "statically linked" in r.stdout or "static-pie" in r.stdout:
                return path
    return None


INIT = static_init()
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="VMs need root (taps, KVM, namespaces)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed (scripts/install-deps.sh)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(KERNEL_DIR, "current")),
                       reason=f"no guest kernel in {KERNEL_DIR} (run scripts/fetch-kernel.sh)"),
    pytest.mark.skipif(INIT is None, reason="no static gureum-init (the normal build's src/guest/gureum-init)"),
]


@pytest.fixture
def vmd():
    d = Gureumd(env={"GUREUM_INIT": INIT})
    d.start()
    try:
        yield d
    finally:
        d.cleanup()


def console_log(d, name):
    try:
        with open(os.path.join(d.state_dir, "instances", name, "logs", "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_booted(d, name):
    """Until gureum-init's agent listens (the console says so): the network is up by then."""
    wait_for(lambda: "gureum-init: agent: listening" in console_log(d, name), timeout=BOOT_TIMEOUT,
             what=f"VM {name} to boot")


def launch_vm(d, name, config=None, command=None):
    body = {"name": name, "type": "virtual-machine", "source": {"type": "image", "alias": "busybox"},
            "start": True, "config": config or {}}
    if command:
        body["command"] = command
    return run_op(d, "POST", "/1.0/instances", body)


def taps(d):
    out = subprocess.run(d.in_netns([IP, "-o", "link", "show"]), capture_output=True, text=True).stdout
    return re.findall(r"^\d+: (grv\d+)", out, re.M)


def qemu_processes(d):
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and any(d.run_dir.encode() in a for a in argv):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
            except (OSError, IndexError):
                continue
            out.append(int(pid))
    return out


def test_vm_boots_shows_its_engine_and_stop_start_delete_leave_nothing(vmd):
    cli = Cli(vmd)
    assert cli.run("launch", "busybox", "v1", "--vm").stdout.strip() == "v1"
    wait_booted(vmd, "v1")
    inst = vmd.get("/1.0/instances/v1")["metadata"]
    assert inst["type"] == "virtual-machine" and inst["status"] == "Running", inst
    # This host's engine, and why (PVM or no KVM here: binary translation).
    assert inst["engine"].startswith("qemu with "), inst
    info = cli.run("info", "v1").stdout
    assert "Type: virtual-machine" in info and "Engine: qemu" in info, info
    log = console_log(vmd, "v1")
    assert "Linux version" in log or "gureum-init" in log
    assert re.search(r"gureum-init: network: eth0 " + re.escape(inst["network"]["ipv4"]), log), log
    assert len(taps(vmd)) == 1 and len(qemu_processes(vmd)) == 1
    assert "RUNNING" in cli.run("list").stdout

    # The boot log is `gureum logs`.
    assert "gureum-init" in cli.run("logs", "v1").stdout

    cli.run("stop", "v1", "--force")
    assert vmd.get("/1.0/instances/v1")["metadata"]["status"] == "Stopped"
    assert taps(vmd) == [] and qemu_processes(vmd) == []
    cli.run("start", "v1")
    wait_for(lambda: console_log(vmd, "v1").count("gureum-init: agent: listening") >= 2, timeout=BOOT_TIMEOUT,
             what="the second boot")
    cli.run("delete", "--force", "v1")
    assert taps(vmd) == [] and qemu_processes(vmd) == []
    assert not os.path.exists(os.path.join(vmd.state_dir, "instances", "v1"))
    assert not os.path.exists(os.path.join(vmd.run_dir, "instances", "v1"))


def test_vm_pause_and_resume(vmd):
    launch_vm(vmd, "p1")
    wait_booted(vmd, "p1")
    run_op(vmd, "PUT", "/1.0/instances/p1/state", {"action": "pause"})
    assert vmd.get("/1.0/instances/p1")["metadata"]["status"] == "Frozen"
    run_op(vmd, "PUT", "/1.0/instances/p1/state", {"action": "resume"})
    assert vmd.get("/1.0/instances/p1")["metadata"]["status"] == "Running"
    run_op(vmd, "DELETE", "/1.0/instances/p1?force=1")


def test_vm_and_container_on_one_network_reach_each_other(vmd):
    launch_vm(vmd, "v1")
    create(vmd, "c1")
    wait_booted(vmd, "v1")
    addr = vmd.get("/1.0/instances/v1")["metadata"]["network"]["ipv4"]
    # The VM's address answers the container (ICMP from the guest's kernel), and its name resolves.
    sh(vmd, "c1", f"ping -c 1 -W 10 {addr}")
    out = sh(vmd, "c1", "nslookup v1")
    assert addr in out, out


def test_daemon_restart_reattaches_a_running_vm(vmd):
    launch_vm(vmd, "v1")
    wait_booted(vmd, "v1")
    before = vmd.get("/1.0/instances/v1/state")["metadata"]
    qemu = qemu_processes(vmd)
    vmd.stop()
    vmd.start()
    after = vmd.get("/1.0/instances/v1/state")["metadata"]
    assert after["status"] == "Running", after
    assert qemu_processes(vmd) == qemu
    assert after.get("pid") == before.get("pid") or after.get("supervisor_pid") == before.get("supervisor_pid")
    # Reconciliation knew it: no unknown workload (not the container driver's either).
    assert vmd.stderr().split("reconcile:")[-1].splitlines()[0].strip() == \
        "1 instance in the database, 0 unknown workloads"


def test_bad_vm_input_is_refused_clearly(vmd):
    base = {"name": "bad", "type": "virtual-machine", "source": {"type": "image", "alias": "busybox"}}
    cases = [
        ({"limits.memory": "64MiB"}, "too little for a VM"),
        ({"limits.cpu": "0.5"}, "whole number of vCPUs"),
        ({"vm.engine": "bochs"}, "not an engine"),
        ({"vm.kernel": "relative/vmlinuz"}, "absolute path"),
        ({"vm.kernel": "/nonexistent/vmlinuz-1.2.3"}, "no kernel for the VM"),
        ({"limits.processes": "10"}, "does not apply to a virtual machine"),
    ]
    for config, text in cases:
        body = dict(base, config=config)
        st, _, env = vmd.request("POST", "/1.0/instances", body=json.dumps(body).encode())
        assert st == 400 or (st == 404 and "kernel" in text), (config, st, env)
        assert text in env["error"], (config, env["error"])
    assert vmd.get("/1.0/instances")["metadata"] == []
    assert not os.path.exists(os.path.join(vmd.state_dir, "instances", "bad"))


def test_gureum_vmm_engine():
    """gureum-vmm runs VMs where KVM is hardware-assisted: not yet through the VM driver."""
    pytest.skip("the VM driver runs QEMU only so far; gureum-vmm has no guest-agent transport yet "
                "(and this host's /dev/kvm is PVM: an unmodified kernel does not boot under it)")
