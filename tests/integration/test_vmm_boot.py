"""gureum-vmm boot paths: SMP bring-up (INIT-SIPI-SIPI) with tests/guest/smp.elf, the 64-bit Linux
boot protocol with tests/guest/bzimage64.bin (a file laid out like a bzImage), and Debian's cloud
kernel with a busybox initramfs, a virtio disk and a virtio NIC where KVM is hardware-assisted. The payloads report through the
debug-exit port: exit status 0 is success, 64+N is the payload's check N failing (see the failure
codes at the top of tests/guest/smp.c and tests/guest/bzimage64.c)."""
import glob
import gzip
import lzma
import os
import secrets
import shutil
import stat
import struct
import subprocess

import pytest

import vmhost
from vmmtest import GUEST, VMM, needs_kvm, vmm

SMP = os.path.join(GUEST, "smp.elf")
BZIMAGE = os.path.join(GUEST, "bzimage64.bin")

pytestmark = needs_kvm


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
LINUX_FAIL = "GUREUM-VMM-LINUX-FAIL"
LINUX_MAC = "02:00:00:4c:4e:58"
# Modules the init loads (with their dependencies first): Debian's cloud kernel has virtio-mmio
# (found through the DSDT), virtio-blk and virtio-net as modules, not built in.
LINUX_MODULES = ("virtio_mmio", "virtio_blk", "virtio_net")

# The init: loads the modules in /lib/modules/order (dependencies first), then checks what the
# machine gave it and prints one line per fact; any failed step prints LINUX_FAIL and the reason.
# /dev/vda's first line is the marker the test wrote into the raw disk file.
INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {{ echo "{LINUX_FAIL}: $*"; poweroff -f; }}
for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m.ko || fail "insmod $m"
done
i=0
while [ ! -e /sys/block/vda ] || [ ! -e /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; do
  i=$((i + 1))
  [ $i -le 20 ] || fail "no vda or eth0 after 20 s: $(ls /sys/block) / $(ls /sys/class/net)"
  sleep 1
done
echo "GUREUM-VMM-LINUX disk: $(head -n 1 /dev/vda)"
echo "GUREUM-VMM-LINUX mac: $(cat /sys/class/net/eth0/address)"
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


def kernel_modules_dir(kernel):
    """/lib/modules/VERSION of a /boot/vmlinuz-VERSION kernel, or GUREUM_LINUX_MODULES; None if absent."""
    d = os.environ.get("GUREUM_LINUX_MODULES")
    if not d:
        name = os.path.basename(kernel or "")
        if not name.startswith("vmlinuz-"):
            return None
        d = os.path.join("/lib/modules", name[len("vmlinuz-"):])
    return d if os.path.isdir(os.path.join(d, "kernel")) else None


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


# ---- kernel modules for the initramfs ----

def module_name(path):
    """virtio_blk for .../virtio_blk.ko[.xz|.gz|.zst]; '-' and '_' are the same in module names."""
    base = os.path.basename(path)
    return base[:base.index(".ko")].replace("-", "_")


def read_module(path):
    """A module's ELF image, decompressed (.ko, .ko.xz, .ko.gz, .ko.zst) for busybox insmod."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        if not shutil.which("zstd"):
            raise RuntimeError(f"{path} is zstd-compressed and zstd is not installed")
        return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout
    return data


def modinfo_depends(elf):
    """The depends= list of a module's .modinfo section (what depmod's modules.dep is built from)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise ValueError("not a 64-bit ELF module")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if elf[stroff + name:elf.index(b"\0", stroff + name)] == b".modinfo":
            for field in elf[off:off + size].split(b"\0"):
                if field.startswith(b"depends="):
                    return [d.replace("-", "_") for d in field[8:].decode().split(",") if d]
            return []
    raise ValueError("no .modinfo section")


def module_graph(moddir):
    """{name: (path, [direct or transitive dependency names])} from modules.dep, or when it is absent
    (an unpacked package that depmod never saw) from every module's .modinfo depends=."""
    graph = {}
    dep = os.path.join(moddir, "modules.dep")
    if os.path.isfile(dep):
        with open(dep) as f:
            for line in f:
                mod, _, deps = line.partition(":")
                if mod.strip():
                    graph[module_name(mod)] = (os.path.join(moddir, mod.strip()),
                                               [module_name(d) for d in deps.split()])
        return graph
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for fn in files:
            if ".ko" in fn:
                graph[module_name(fn)] = (os.path.join(root, fn), None)  # depends= read on demand
    return graph


def builtin_modules(moddir):
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return {module_name(line.strip()) for line in f if ".ko" in line}
    except OSError:
        return set()


def modules_in_load_order(moddir, wanted):
    """[(name, ELF bytes)] for wanted and everything they need, each after its dependencies;
    modules built into the kernel are left out. Raises LookupError for a module nowhere."""
    graph, builtin = module_graph(moddir), builtin_modules(moddir)
    order, images, visiting = [], {}, set()

    def visit(name):
        if name in images or name in builtin:
            return
        if name not in graph:
            raise LookupError(f"module {name} is neither in {moddir} nor built in")
        if name in visiting:
            raise LookupError(f"module dependency cycle through {name}")
        visiting.add(name)
        path, deps = graph[name]
        elf = read_module(path)
        for d in (modinfo_depends(elf) if deps is None else deps):
            visit(d)
        visiting.discard(name)
        images[name] = elf
        order.append(name)

    for w in wanted:
        visit(w)
    return [(n, images[n]) for n in order]


def linux_initramfs(path, moddir):
    """Writes the busybox initramfs with the virtio modules; returns their load order."""
    with open(static_busybox(), "rb") as f:
        busybox = f.read()
    mods = modules_in_load_order(moddir, LINUX_MODULES)
    entries = [
        ("bin", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("dev", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("dev/console", stat.S_IFCHR | 0o600, b"", 5, 1),
        ("proc", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("sys", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("lib", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("lib/modules", stat.S_IFDIR | 0o755, b"", 0, 0),
        ("lib/modules/order", stat.S_IFREG | 0o644, "".join(n + "\n" for n, _ in mods).encode(), 0, 0),
        ("bin/busybox", stat.S_IFREG | 0o755, busybox, 0, 0),
        ("init", stat.S_IFREG | 0o755, INIT_SCRIPT.encode(), 0, 0),
    ]
    entries += [(f"lib/modules/{n}.ko", stat.S_IFREG | 0o644, elf, 0, 0) for n, elf in mods]
    with open(path, "wb") as f:
        f.write(cpio_newc(entries))
    return [n for n, _ in mods]


def linux_skip_reason():
    reasons = []
    pvm = vmhost.pvm_reason()
    if pvm:
        reasons.append(pvm)
    kernel = cloud_kernel()
    if not kernel:
        reasons.append("no Debian cloud kernel: /boot/vmlinuz-*-cloud-amd64 is absent (install "
                       "linux-image-cloud-amd64, or set GUREUM_LINUX_KERNEL)")
    elif not kernel_modules_dir(kernel):
        reasons.append(f"no modules for {kernel}: /lib/modules/VERSION/kernel is absent "
                       "(set GUREUM_LINUX_MODULES to the kernel's /lib/modules/VERSION)")
    if not static_busybox():
        reasons.append("no static busybox for the initramfs (Debian: busybox-static)")
    if os.geteuid() != 0:
        reasons.append("the NIC's tap and network namespace need root")
    elif not os.path.exists("/dev/net/tun") or shutil.which("ip") is None:
        reasons.append("no /dev/net/tun or no ip (iproute2) for the NIC's tap")
    return "; ".join(reasons) or None


def test_pvm_detection():
    """The helper reads /proc/modules and the cpuinfo flags."""
    assert vmhost.pvm_reason(modules="kvm_pvm 12345 0 - Live 0x0\nkvm 1 1 kvm_pvm, Live 0x0\n",
                             cpuinfo="flags\t\t: fpu vme svm\n")
    assert vmhost.pvm_reason(modules="kvm_amd 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu sse2\n")
    assert vmhost.pvm_reason(modules="kvm_amd 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu svm\n") is None
    assert vmhost.pvm_reason(modules="kvm_intel 1 0 - Live 0x0\n", cpuinfo="flags\t\t: fpu vmx\n") is None


def fake_module(depends):
    """A minimal 64-bit ELF with a .modinfo section, as modinfo_depends reads it."""
    modinfo = b"license=GPL\0depends=" + depends.encode() + b"\0name=x\0"
    shstr = b"\0.modinfo\0.shstrtab\0"
    body = modinfo + shstr
    shoff = 64 + len(body)
    hdr = bytearray(64)
    hdr[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", hdr, 0x28, shoff)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 3, 2)
    sh = bytes(64)
    sh += struct.pack("<IIQQQQ", 1, 1, 0, 0, 64, len(modinfo)).ljust(64, b"\0")
    sh += struct.pack("<IIQQQQ", 10, 3, 0, 0, 64 + len(modinfo), len(shstr)).ljust(64, b"\0")
    return bytes(hdr) + body + sh


def test_initramfs_modules_in_dependency_order(tmp_path):
    """The initramfs builder (runs everywhere): dependencies from modules.dep, or from .modinfo
    depends= without it, each module after its dependencies and once, built-in ones left out,
    .ko.xz and .ko.gz decompressed, '-' in file names read as '_'."""
    deps = {"virtio": [], "virtio_ring": [], "failover": [], "net_failover": ["failover"],
            "virtio_mmio": ["virtio", "virtio_ring"], "virtio_blk": ["virtio", "virtio_ring"],
            "virtio_net": ["net_failover", "virtio", "virtio_ring"]}
    files = {"virtio_ring": "virtio_ring.ko.xz", "failover": "failover.ko.gz", "net_failover": "net-failover.ko"}
    d = tmp_path / "kernel" / "drivers"
    d.mkdir(parents=True)
    for name, ds in deps.items():
        fn = files.get(name, name + ".ko")
        elf = fake_module(",".join(ds))
        (d / fn).write_bytes(lzma.compress(elf) if fn.endswith(".xz") else
                             gzip.compress(elf) if fn.endswith(".gz") else elf)

    def check():
        order = [n for n, _ in modules_in_load_order(str(tmp_path), LINUX_MODULES)]
        assert sorted(order) == sorted(deps), order
        for name, ds in deps.items():
            for dep in ds:
                assert order.index(dep) < order.index(name), (dep, name, order)
        images = dict(modules_in_load_order(str(tmp_path), ["virtio_ring", "failover"]))
        assert images["virtio_ring"] == fake_module("") and images["failover"] == fake_module("")

    check()  # from .modinfo
    # modules.dep lists the whole closure (here in an order where loading left to right would fail:
    # net_failover before failover); the .modinfo of virtio_net is ignored then
    rel = lambda n: "kernel/drivers/" + files.get(n, n + ".ko")
    closure = {**{n: ds for n, ds in deps.items()}, "virtio_net": ["net_failover", "failover", "virtio", "virtio_ring"]}
    (d / "virtio_net.ko").write_bytes(fake_module("nosuch_module"))
    (tmp_path / "modules.dep").write_text("".join(f"{rel(n)}: {' '.join(rel(x) for x in ds)}\n"
                                                  for n, ds in closure.items()))
    check()
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_mmio.ko\n")
    assert "virtio_mmio" not in [n for n, _ in modules_in_load_order(str(tmp_path), LINUX_MODULES)]
    with pytest.raises(LookupError, match="virtio_vsock"):
        modules_in_load_order(str(tmp_path), ["virtio_vsock"])


def run_in_netns(ns, *args, timeout=60, check=True):
    return subprocess.run(["ip", "netns", "exec", ns, *map(str, args)] if ns else list(map(str, args)),
                          capture_output=True, text=True, timeout=timeout, check=check)


def test_debian_cloud_kernel_boots_with_disk_and_nic(tmp_path):
    """Debian's cloud kernel (bzImage, 64-bit entry) boots with 2 vCPUs (SMP through the MADT), a
    virtio disk and a virtio NIC (virtio-mmio through the DSDT) into a busybox initramfs whose init
    loads the virtio modules, reads the marker the test wrote into the disk, finds eth0 with the
    --net mac= address, prints the CPU count and powers off. Needs VT-x/AMD-V."""
    reason = linux_skip_reason()
    if reason:
        pytest.skip(reason)
    kernel = cloud_kernel()
    initrd = tmp_path / "initramfs.cpio"
    loaded = linux_initramfs(initrd, kernel_modules_dir(kernel))
    disk = tmp_path / "disk.img"
    marker = f"GUREUM-DISK-MARKER-{secrets.token_hex(8)}"
    with open(disk, "wb") as f:
        f.write((marker + "\n").encode().ljust(4096, b"\0"))
        f.truncate(8 << 20)
    ns = f"gureum-test-{secrets.token_hex(4)}"
    run_in_netns(None, "ip", "netns", "add", ns)
    try:
        run_in_netns(None, "ip", "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
        run_in_netns(None, "ip", "-n", ns, "link", "set", "tap0", "up")
        try:
            # Power-off goes through ACPI S5 (exit status 0); should it fail, panic=-1 and reboot=k
            # turn the panic into an i8042 reset, which gureum-vmm reports as exit status 2.
            r = run_in_netns(ns, VMM, "--kernel", kernel, "--initrd", initrd, "--memory", "512M", "--cpus", 2,
                             "--disk", disk, "--net", f"tap=tap0,mac={LINUX_MAC}",
                             "--cmdline", "console=ttyS0 panic=-1 reboot=k quiet", timeout=180, check=False)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            pytest.fail(f"Linux did not finish within 180 s; serial output ends with:\n{out[-3000:]}")
    finally:
        run_in_netns(None, "ip", "netns", "del", ns, check=False)
    ctx = (r.returncode, loaded, r.stdout[-3000:], r.stderr)
    assert LINUX_FAIL not in r.stdout, ctx
    assert f"GUREUM-VMM-LINUX disk: {marker}" in r.stdout, ctx
    assert f"GUREUM-VMM-LINUX mac: {LINUX_MAC}" in r.stdout, ctx
    assert LINUX_MARKER + " cpus=2" in r.stdout, ctx
    assert r.returncode in (0, 2), ctx
