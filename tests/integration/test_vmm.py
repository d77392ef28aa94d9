"""gureum-vmm boots the freestanding payloads of tests/guest through PVH and reports through its
exit status (see src/vmm/README.md). These run on PVM hosts too: the payloads are tiny."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
VMM = os.environ.get("GUREUM_VMM", os.path.join(BUILD, "src", "vmm", "gureum-vmm"))
GUEST = os.path.join(BUILD, "tests", "guest")

pytestmark = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                                reason="/dev/kvm is not available: gureum-vmm needs KVM")


def vmm(*args, timeout=60):
    return subprocess.run([VMM, *map(str, args)], capture_output=True, text=True, timeout=timeout)


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
