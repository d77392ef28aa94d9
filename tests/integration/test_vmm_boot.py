"""gureum-vmm boot paths: SMP bring-up (INIT-SIPI-SIPI) with tests/guest/smp.elf, the 64-bit Linux
boot protocol with tests/guest/bzimage64.bin (a file laid out like a bzImage), and Debian's cloud
kernel with a busybox initramfs where KVM is hardware-assisted. The payloads report through the
debug-exit port: exit status 0 is success, 64+N is the payload's check N failing (see the failure
codes at the top of tests/guest/smp.c and tests/guest/bzimage64.c)."""
import glob
import os
import stat
import subprocess

import pytest

import vmhost

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("GUREUM_BUILD", os.path.join(REPO, "build"))
VMM = os.environ.get("GUREUM_VMM", os.path.join(BUILD, "src", "vmm", "gureum-vmm"))
GUEST = os.path.join(BUILD, "tests", "guest")
SMP = os.path.join(GUEST, "smp.elf")
BZIMAGE = os.path.join(GUEST, "bzimage64.bin")

pytestmark = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                                reason="/dev/kvm is not available: gureum-vmm needs KVM")


def vmm(*args, timeout=60):
    return subprocess.run([VMM, *map(str, args)], capture_output=True, text=True, timeout=timeout)


# ---- SMP ----

@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_smp_every_ap_starts(cpus):
    """The BSP finds the APIC ids in the MADT and wakes each AP with INIT, SIPI, SIPI; each AP goes
    through the real-mode trampoline to protected mode and checks in with its own APIC id."""
    r = vmm("--kernel", SMP, "--memory", "32M", "--cpus", cpus, "--cmdline", f"cpus={cpus}")
    assert r.returncode == 0, r
    assert f"smp: 0x{cpus:08x} CPUs up" in r.stdout, r


def test_smp_reports_missing_aps():
    """The payload's own check works: told to expect more CPUs than the MADT lists, it fails with 5."""
    r = vmm("--kernel", SMP, "--memory", "32M", "--cpus", 2, "--cmdline", "cpus=3")
    assert r.returncode == 64 + 5, r


# ---- the 64-bit boot protocol ----

def pattern(n):
    return bytes(i % 251 for i in range(n))


def test_bzimage64_without_initrd():
    r = vmm("--kernel", BZIMAGE, "--memory", "64M", "--cmdline", "console=ttyS0 bz=1")
    assert r.returncode == 0, r
    assert "bzimage64: ok" in r.stdout, r


@pytest.mark.parametrize("memory", ["16M", "128M"])
def test_bzimage64_with_initrd(tmp_path, memory):
    """The initrd's bytes arrive, page-aligned, clear of init_size, in RAM and below the header's
    initrd_addr_max (32 MiB: the limit with 128M, the end of RAM with 16M)."""
    rd = tmp_path / "initrd.bin"
    rd.write_bytes(pattern(70001))
    r = vmm("--kernel", BZIMAGE, "--memory", memory, "--initrd", rd, "--cmdline", "bz=1 initrd_len=70001")
    assert r.returncode == 0, r
    assert "bzimage64: ok" in r.stdout, r


def test_bzimage64_checks_fail_when_they_should(tmp_path):
    """The payload's checks are live: a wrong initrd length is check 7, a missing bz=1 check 6."""
    rd = tmp_path / "initrd.bin"
    rd.write_bytes(pattern(4096))
    assert vmm("--kernel", BZIMAGE, "--memory", "32M", "--initrd", rd,
               "--cmdline", "bz=1 initrd_len=4097").returncode == 64 + 7
    assert vmm("--kernel", BZIMAGE, "--memory", "32M", "--cmdline", "bz=2").returncode == 64 + 6


def test_bzimage64_header_limits_are_enforced(tmp_path):
    """cmdline_size (255) and initrd_addr_max (32 MiB) from the file's header bound what the VMM
    accepts: clear errors, before the guest runs."""
    r = vmm("--kernel", BZIMAGE, "--memory", "32M", "--cmdline", "bz=1 " + "x" * 300)
    assert r.returncode == 1 and "cmdline_size 255" in r.stderr, r
    rd = tmp_path / "big.bin"
    with open(rd, "wb") as f:
        f.truncate(40 << 20)
    r = vmm("--kernel", BZIMAGE, "--memory", "128M", "--initrd", rd, "--cmdline", "bz=1")
    assert r.returncode == 1 and "do not fit below" in r.stderr, r


# ---- Debian's kernel ----

LINUX_MARKER = "GUREUM-VMM-LINUX-OK"
INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "{LINUX_MARKER} cpus=$(grep -c ^processor /proc/cpuinfo)"
poweroff -f
"""


def cloud_kernel():
    """Debian's linux-image-cloud-amd64 kernel, or GUREUM_LINUX_KERNEL; None if absent."""
    k = os.environ.get("GUREUM_LINUX_KERNEL")
    if k:
        return k if os.path.isfile(k) else None
    found = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    return found[-1] if found else None


def static_busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(p):
            with open(p, "rb") as f:
                head = f.read(4096)
            if b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head:
                return p
    return None


def cpio_newc(entries):
    """An uncompressed initramfs: entries of (name, mode, data, rdev_major, rdev_minor)."""
    out = bytearray()

    def add(ino, name, mode, data=b"", rmaj=0, rmin=0):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0]
        out.extend(b"070701" + b"".join(b"%08x" % v for v in fields) + nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for i, (name, mode, data, rmaj, rmin) in enumerate(entries, 1):
        add(i, name, mode, data, rmaj, rmin)
    add(0, "TRAILER!!!", 0)
    return bytes(out)


def linux_skip_reason():
    reasons = []
    pvm = vmhost.pvm_reason()
    if pvm:
        reasons.append(pvm)
    if not cloud_kernel():
        reasons.append("no Debian cloud kernel: /boot/vmlinuz-*-cloud-amd64 is absent (linux-image-cloud-amd64 "
                       "is not installed by scripts/install-deps.sh; set GUREUM_LINUX_KERNEL to use another)")
    if not static_busybox():
        reasons.append("no static busybox for the initramfs (Debian: busybox-static)")
    return "; ".join(reasons) or None


def test_pvm_detection():
    """The helper reads /proc/modules and the cpuinfo flags."""
    assert vmhost.pvm_reason(modules="kvm_pvm 12345 0 - Live 0x0\nkvm 1 1 kvm_pvm, Live 0x0\n",
                             cpuinfo="flags\t\t: fpu vme svm\n")
    assert vmhost.pvm_reason(modules="kvm_amd 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu sse2\n")
    assert vmhost.pvm_reason(modules="kvm_amd 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu svm\n") is None
    assert vmhost.pvm_reason(modules="kvm_intel 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu vmx\n") is None


def test_debian_cloud_kernel_boots_busybox(tmp_path):
    """Debian's cloud kernel (bzImage, 64-bit entry) boots with 2 vCPUs (SMP through the MADT) into a
    busybox initramfs whose init prints a marker and powers off. Needs VT-x/AMD-V."""
    reason = linux_skip_reason()
    if reason:
        pytest.skip(reason)
    with open(static_busybox(), "rb") as f:
        busybox = f.read()
    initrd = tmp_path / "initramfs.cpio"
    initrd.write_bytes(cpio_newc([
        ("bin", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("dev", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("dev/console", stat.S_IFCHR | 0o600, b"", 5, 1),
        ("proc", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("sys", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox, 0, 0),
        ("init", stat.S_IFREG | 0o755, INIT_SCRIPT.encode(), 0, 0),
    ]))
    try:
        # Power-off without ACPI sleep support ends in a panic; panic=-1 and reboot=k turn that
        # into an i8042 reset, which gureum-vmm reports as exit status 2.
        r = vmm("--kernel", cloud_kernel(), "--initrd", initrd, "--memory", "512M", "--cpus", 2,
                "--cmdline", "console=ttyS0 panic=-1 reboot=k quiet", timeout=180)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"Linux did not finish within 180 s; serial output ends with:\n{out[-3000:]}")
    assert LINUX_MARKER + " cpus=2" in r.stdout, (r.returncode, r.stdout[-3000:], r.stderr)
    assert r.returncode in (0, 2), (r.returncode, r.stdout[-3000:], r.stderr)
