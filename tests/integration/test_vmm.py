"""gureum-vmm boots the freestanding payloads of tests/guest through PVH and reports through its
exit status (see src/vmm/README.md). These run on PVM hosts too: the payloads are tiny."""
import json
import os
import subprocess

import pytest

from vmmtest import GUEST, VMM, confined, needs_kvm, vmm, wait_for

pytestmark = needs_kvm


def test_hello_payload_boots_through_pvh():
    r = vmm("--kernel", os.path.join(GUEST, "hello.elf"), "--memory", "64M", "--cmdline", "console=ttyS0 x=1")
    assert r.returncode == 0, r
    assert "gureum-vmm payload: hello" in r.stdout and "gureum-vmm payload: ok" in r.stdout, r
    assert "cmdline: console=ttyS0 x=1" in r.stdout, r


def test_serial_to_file_and_two_cpus(tmp_path):
    out = tmp_path / "serial.log"
    r = vmm("--kernel", os.path.join(GUEST, "hello.elf"), "--memory", "64M", "--cpus", "2",
            "--serial", f"file={out}")
    assert r.returncode == 0, r
    assert "payload: ok" in out.read_text()
    assert r.stdout == ""


def test_config_file(tmp_path):
    cfg = tmp_path / "vm.json"
    cfg.write_text('{"kernel": "%s", "memory": "32M", "cpus": 1}' % os.path.join(GUEST, "hello.elf"))
    r = vmm("--config", cfg)
    assert r.returncode == 0, r
    cfg.write_text('{"kernel": "x", "memroy": "32M"}')
    r = vmm("--config", cfg)
    assert r.returncode == 1 and 'unknown setting "memroy"' in r.stderr, r


@pytest.mark.parametrize("args, message", [
    (["--kernel", "/nonexistent/vmlinuz"], "/nonexistent/vmlinuz"),
    (["--kernel", "/etc/hostname"], "neither a bzImage nor an ELF"),
    (["--kernel", "HELLO", "--memory", "4K"], "at least 1 MiB"),
    (["--kernel", "HELLO", "--memory", "lots"], "--memory"),
    (["--kernel", "HELLO", "--cpus", "0"], "--cpus"),
    (["--kernel", "HELLO", "--bogus"], "unknown option"),
    (["--kernel", "HELLO", "--serial", "tcp:1"], "--serial"),
    (["--kernel", "HELLO", "--initrd", "/nonexistent/initrd"], "/nonexistent/initrd"),
])
def test_bad_input_is_a_clear_error(args, message):
    args = [os.path.join(GUEST, "hello.elf") if a == "HELLO" else a for a in args]
    r = vmm(*args)
    assert r.returncode == 1, r
    assert message in r.stderr, r


@pytest.fixture
def initrd(tmp_path):
    p = tmp_path / "initrd.bin"
    p.write_bytes(bytes(i % 251 for i in range(100000)))
    return p


@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_guest_checks_boot_info_initrd_and_acpi(cpus, initrd):
    """In the guest: memory map, command line, the initrd's bytes, RSDP/XSDT/FADT/DSDT checksums,
    the MADT listing exactly --cpus processors, the FADT's hardware-reduced flag."""
    r = vmm("--kernel", os.path.join(GUEST, "checks.elf"), "--memory", "128M", "--cpus", cpus,
            "--initrd", initrd, "--cmdline", f"cpus={cpus} initrd_len=100000")
    assert r.returncode == 0, r
    assert "gureum-vmm checks: ok" in r.stdout


def test_guest_checks_can_fail(initrd):
    """The payload really checks: told to expect 3 CPUs while the VM has 2, it reports check 12
    (MADT CPU count), which gureum-vmm turns into exit status 64 + 12."""
    r = vmm("--kernel", os.path.join(GUEST, "checks.elf"), "--memory", "64M", "--cpus", 2,
            "--cmdline", "cpus=3")
    assert r.returncode == 64 + 12, r
    assert "failure 12" in r.stderr, r


@pytest.mark.skipif(not os.path.exists("/usr/bin/iasl"), reason="iasl (acpica-tools) is not installed")
def test_dumped_acpi_tables_decode_cleanly(tmp_path):
    d = tmp_path / "acpi"
    d.mkdir()
    r = vmm("--kernel", os.path.join(GUEST, "hello.elf"), "--memory", "64M", "--cpus", 3, "--dump-acpi", d,
            "--serial", "none")
    assert r.returncode == 0, r
    names = sorted(p.name for p in d.iterdir())
    for sig in ("APIC.dat", "DSDT.dat", "FACP.dat", "XSDT.dat"):
        assert sig in names, names
    for name in names:
        if name == "RSDP.dat":
            continue  # iasl cannot load an RSDP from a file; the guest payload checks it
        p = subprocess.run(["iasl", "-d", str(d / name)], capture_output=True, text=True, cwd=d, timeout=60)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        assert not [l for l in out.splitlines() if "Error" in l or "Warning" in l], out
    madt = (d / "APIC.dsl").read_text()
    assert madt.count("Processor Local APIC") == 3, madt


# ---- virtio devices (tests/guest/virtio.c drives them from inside the guest) ----

SECTOR0 = bytes((i * 7 + 3) & 0xFF for i in range(512))
SECTOR1 = bytes((i * 13 + 1) & 0xFF for i in range(512))


@pytest.fixture
def disk(tmp_path):
    """1 MiB raw disk whose sector 0 the payload checks."""
    p = tmp_path / "disk.img"
    p.write_bytes(SECTOR0 + bytes(1024 * 1024 - 512))
    return p


def virtio_payload(*args, cmdline):
    return vmm("--kernel", os.path.join(GUEST, "virtio.elf"), "--memory", "64M", *args, "--cmdline", cmdline)


def test_virtio_rng():
    r = virtio_payload("--rng", cmdline="rng=1")
    assert r.returncode == 0, r
    assert "virtio: rng ok" in r.stdout, r


def test_virtio_blk_round_trip(disk):
    """Write sector 1, FLUSH, read it back, read the host's sector 0, read past the end (IOERR)."""
    r = virtio_payload("--disk", disk, cmdline="blk=1")
    assert r.returncode == 0, r
    assert "virtio: blk ok" in r.stdout, r
    data = disk.read_bytes()
    assert data[512:1024] == SECTOR1
    assert data[:512] == SECTOR0 and len(data) == 1024 * 1024


def test_virtio_blk_and_rng_together(disk):
    r = virtio_payload("--disk", disk, "--rng", "--cpus", 2, cmdline="rng=1 blk=1")
    assert r.returncode == 0, r
    assert "virtio: rng ok" in r.stdout and "virtio: blk ok" in r.stdout, r


def test_virtio_blk_read_only_refuses_writes(disk):
    before = disk.read_bytes()
    r = virtio_payload("--disk", f"{disk},ro", cmdline="blk=1")
    assert r.returncode == 64 + 24, r          # the payload's "write status" check
    assert "blk write status 0x00000001" in r.stdout, r   # VIRTIO_BLK_S_IOERR
    assert disk.read_bytes() == before


def test_virtio_devices_from_config_file(tmp_path, disk):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"kernel": os.path.join(GUEST, "virtio.elf"), "memory": "64M",
                               "cmdline": "rng=1 blk=1", "disks": [str(disk)], "rng": True}))
    r = vmm("--config", cfg)
    assert r.returncode == 0, r
    assert disk.read_bytes()[512:1024] == SECTOR1
    cfg.write_text(json.dumps({"kernel": "x", "disks": [7]}))
    r = vmm("--config", cfg)
    assert r.returncode == 1 and "disks[0]" in r.stderr, r


@pytest.mark.parametrize("spec, message", [
    ("/nonexistent/disk.img", "/nonexistent/disk.img"),
    ("DISK,rw", 'unknown option "rw"'),
    ("DISK,ro,bogus", 'unknown option "bogus"'),
    (",ro", "no path"),
    ("", "no path"),
    ("/tmp", "/tmp: cannot open for writing: Is a directory"),
    ("/tmp,ro", "not a regular file or a block device"),
    ("TINY", "smaller than one 512-byte sector"),
])
def test_bad_disk_is_a_clear_error(tmp_path, disk, spec, message):
    tiny = tmp_path / "tiny.img"
    tiny.write_bytes(b"x" * 100)
    spec = spec.replace("DISK", str(disk)).replace("TINY", str(tiny))
    r = virtio_payload("--disk", spec, cmdline="blk=1")
    assert r.returncode == 1, r
    assert "--disk" in r.stderr and message in r.stderr, r


def test_too_many_virtio_devices(disk):
    r = virtio_payload(*["--disk", disk] * 19, "--rng", cmdline="blk=1")
    assert r.returncode == 1, r
    assert "too many virtio devices (at most 19" in r.stderr, r
    r = virtio_payload(*["--disk", disk] * 20, cmdline="blk=1")
    assert r.returncode == 1 and "too many virtio devices" in r.stderr, r


def test_running_vmm_is_confined(tmp_path):
    """Once set up, the VMM runs with no capabilities, no_new_privs and its seccomp filter."""
    out = tmp_path / "serial"
    p = subprocess.Popen([VMM, "--kernel", os.path.join(GUEST, "idle.elf"), "--memory", "32M",
                          "--serial", f"file={out}"], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (out.exists() and "idle" in out.read_text() and confined(p.pid)) or p.poll() is not None,
                 timeout=60, what="the payload running under the filter")
        assert p.poll() is None, p.stderr.read()
        with open(f"/proc/{p.pid}/status") as f:
            status = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
        assert status.get("Seccomp") == "2", status
        assert status.get("NoNewPrivs") == "1", status
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(status[k], 16) == 0, (k, status[k])
    finally:
        p.kill()
        p.wait()


# ---- ACPI power-off and reset (tests/guest/poweroff.c uses the FADT as Linux does) ----

@pytest.mark.parametrize("cpus", [1, 2])
def test_acpi_poweroff_through_sleep_control_register(cpus):
    """SLP_TYP 5 | SLP_EN to the FADT's SLEEP_CONTROL_REG ends gureum-vmm with status 0 (after
    writes without SLP_EN or for S3 were not taken as a power-off, and WAK_STS behaved)."""
    r = vmm("--kernel", os.path.join(GUEST, "poweroff.elf"), "--memory", "64M", "--cpus", cpus)
    assert r.returncode == 0, r
    assert "gureum-vmm poweroff: S5 through sleep control port 0x00000600" in r.stdout, r


def test_acpi_reset_register():
    """The FADT's RESET_VALUE written to its RESET_REG port: exit status 2."""
    r = vmm("--kernel", os.path.join(GUEST, "poweroff.elf"), "--memory", "64M", "--cmdline", "mode=reset")
    assert r.returncode == 2, r
    assert "gureum-vmm poweroff: reset through port 0x00000064" in r.stdout, r
    assert "guest reset" in r.stderr, r
