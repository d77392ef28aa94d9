"""What kind of KVM this host has: tests that boot unmodified Linux under gureum-vmm need hardware
virtualization (VT-x or AMD-V). On PVM hosts (module kvm_pvm, no vmx/svm flag in /proc/cpuinfo),
small guests run but Linux does not boot (see /work/shared/ENVIRONMENT.md, "KVM is PVM here")."""
import os


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cpu_flags(cpuinfo=None):
    """The CPU flags of the first processor in /proc/cpuinfo, as a set."""
    text = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def pvm_reason(modules=None, cpuinfo=None):
    """Why KVM on this host cannot boot unmodified Linux, or None when it can (hardware-assisted).
    The arguments are the texts of /proc/modules and /proc/cpuinfo, read when not given."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) and modules is None:
        return "/dev/kvm is not available"
    mods = _read("/proc/modules") if modules is None else modules
    if any(line.split()[:1] == ["kvm_pvm"] for line in mods.splitlines()) or \
            (modules is None and os.path.isdir("/sys/module/kvm_pvm")):
        return "KVM here is PVM (module kvm_pvm loaded): unmodified Linux does not boot under it"
    if not cpu_flags(cpuinfo) & {"vmx", "svm"}:
        return "no vmx/svm in /proc/cpuinfo flags: KVM is not hardware-assisted here (PVM or nested without VT-x/AMD-V)"
    return None
