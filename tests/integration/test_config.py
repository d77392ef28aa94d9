"""config.json fields take effect: resources, seccomp, capabilities, read-only/masked paths,
mounts, devices, sysctl, rlimits, user, env/cwd, oomScoreAdj, noNewPrivileges, hostname,
domainname, personality, rootfsPropagation."""
import os
import subprocess

import pytest

from helpers import cgroup_file, read_text, wait_file

CAP_NET_ADMIN = 12
SCMP_ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def run_sh(rt, bundle_obj, script):
    bundle_obj.sh(script)
    return rt.run(bundle_obj)


# --- resources -----------------------------------------------------------------------------

def test_pids_limit_stops_fork_bomb(rt, bundle):
    b = bundle()
    b.linux.setdefault("resources", {})["pids"] = {"limit": 20}
    r = run_sh(rt, b, "i=0; while [ $i -lt 60 ]; do sleep 60 & i=$((i+1)); done; "
                      "echo procs=$(ls -d /proc/[0-9]* | wc -l)")
    out = r.output
    procs = int(out.split("procs=")[1].split()[0]) if "procs=" in out else None
    assert "can't fork" in out or (procs is not None and procs <= 20), r
    assert procs is None or procs <= 20, r


def test_pids_limit_in_cgroup(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.linux.setdefault("resources", {})["pids"] = {"limit": 20}
    _, pid = rt.start_detached(b, cid)
    assert read_text(cgroup_file(pid, "pids", "pids.max")).strip() == "20"


# tail keeps the last "line" of a newline-free stream in anonymous memory: 200 MiB of it.
# Bounded, so that a runtime that fails to apply the limit fails the test (exit 0) instead of
# eating the machine. The pipeline's status is tail's: 137 when the OOM killer takes it.
ALLOC_200M = "head -c 200m /dev/zero | tail > /dev/null"


def _memory_limited(bundle):
    b = bundle("sh", "-c", ALLOC_200M)
    mem = {"limit": 32 * 1024 * 1024}
    if read_text("/proc/swaps").count("\n") > 1:
        mem["swap"] = mem["limit"]  # no swapping around the limit on hosts with swap
    b.linux.setdefault("resources", {})["memory"] = mem
    return b


@pytest.mark.slow
def test_memory_limit_oom_kills(rt, bundle, cid):
    b = _memory_limited(bundle)
    r = rt.run(b, cid, timeout=120)
    assert r.returncode == 137, r
    assert rt("state", cid, check=False).returncode != 0  # run removed the stopped container


@pytest.mark.slow
def test_memory_limit_oom_kills_detached(rt, bundle, cid):
    b = _memory_limited(bundle)
    b.process["args"] = ["tail", "/dev/zero"]  # the init itself allocates until killed
    _, pid = rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped", timeout=120)
    assert rt.state(cid)["status"] == "stopped"


# --- seccomp -------------------------------------------------------------------------------

def _mkdir_script():
    return "mkdir /scratch/d && echo made"


def test_seccomp_errno(rt, bundle):
    b = bundle()
    b.tmpfs_at("/scratch")
    r = run_sh(rt, b, _mkdir_script())  # control: allowed without the profile
    assert r.returncode == 0 and "made" in r.stdout, r
    b2 = bundle()
    b2.tmpfs_at("/scratch")
    b2.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": SCMP_ARCHES,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    r = run_sh(rt, b2, _mkdir_script())
    assert r.returncode != 0, r
    assert "Operation not permitted" in r.stderr, r


def test_seccomp_errno_value(rt, bundle):
    b = bundle()
    b.tmpfs_at("/scratch")
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": SCMP_ARCHES,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}]}
    r = run_sh(rt, b, _mkdir_script())
    assert "No space left on device" in r.stderr, r


def test_seccomp_args_condition(rt, bundle):
    """kill(pid, SIGUSR1) is refused, kill(pid, SIGUSR2) is not (rule on argument 1)."""
    b = bundle()
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": SCMP_ARCHES,
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}]}
    r = run_sh(rt, b, "trap '' USR1 USR2; kill -USR2 $$ && echo usr2-ok; "
                      "kill -USR1 $$ || echo usr1-denied")
    assert "usr2-ok" in r.stdout, r
    assert "usr1-denied" in r.stdout and "Operation not permitted" in r.stderr, r


def test_seccomp_default_errno_action(rt, bundle):
    """defaultAction ERRNO with an allow-list: a syscall not listed fails with the default."""
    b = bundle()
    allowed = ["read", "write", "exit", "exit_group", "execve", "brk", "mmap", "munmap", "mprotect",
               "arch_prctl", "set_tid_address", "set_robust_list", "rt_sigaction", "rt_sigprocmask",
               "rt_sigreturn", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
               "fstat", "newfstatat", "stat", "lstat", "uname", "prlimit64", "getrandom", "ioctl",
               "fcntl", "close", "dup2", "dup3", "wait4", "clone", "clone3", "fork", "vfork",
               "rseq", "openat", "open", "getcwd", "readlink", "access", "faccessat", "faccessat2",
               "sigaltstack", "futex", "statx", "lseek", "getdents64", "pipe", "pipe2", "poll",
               "select", "pselect6", "nanosleep", "clock_nanosleep", "capget", "capset", "prctl",
               "setgroups", "setuid", "setgid", "setresuid", "setresgid", "getresuid", "getresgid",
               "chdir", "fchdir", "getgroups", "umask", "kill", "tgkill", "epoll_create1",
               "epoll_ctl", "epoll_wait", "epoll_pwait", "close_range", "sched_getaffinity",
               "fstatfs", "statfs", "gettid", "setsid", "getpgrp", "setpgid", "getpgid", "setsid"]
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": SCMP_ARCHES,
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    b.tmpfs_at("/scratch")
    r = run_sh(rt, b, "echo alive; mkdir /scratch/d || echo refused")
    assert "alive" in r.stdout, r
    assert "refused" in r.stdout, r


# --- capabilities ---------------------------------------------------------------------------

def test_capability_dropped_is_missing(rt, bundle):
    b = bundle()
    r = run_sh(rt, b, "grep CapEff /proc/self/status; ip link add grbr0 type bridge && echo added")
    assert "added" not in r.stdout, r
    assert "Operation not permitted" in r.stderr, r
    eff = int(r.stdout.split()[1], 16)
    assert eff == (1 << 29) | (1 << 5) | (1 << 10), hex(eff)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE


def test_capability_added_works(rt, bundle):
    b = bundle()
    b.add_caps("CAP_NET_ADMIN")
    r = run_sh(rt, b, "ip link add grbr0 type bridge && echo added && ls /sys/class/net")
    assert r.returncode == 0, r
    assert "added" in r.stdout and "grbr0" in r.stdout


def test_capability_sets_separate(rt, bundle):
    """Each capability set of the config is applied on its own."""
    b = bundle("grep", "^Cap", "/proc/self/status")
    caps = b.process["capabilities"]
    caps["bounding"] = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    caps["permitted"] = ["CAP_KILL", "CAP_CHOWN"]
    caps["effective"] = ["CAP_KILL"]
    caps["inheritable"] = []
    caps["ambient"] = []
    r = rt.run(b)
    st = dict(l.split(":\t") for l in r.stdout.splitlines())
    assert int(st["CapBnd"], 16) == (1 << 5) | (1 << 0) | (1 << 10), st
    assert int(st["CapPrm"], 16) in ((1 << 5) | (1 << 0), 1 << 5), st  # execve of root keeps prm
    assert int(st["CapEff"], 16) in ((1 << 5), (1 << 5) | (1 << 0)), st
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0, st


# --- filesystem ----------------------------------------------------------------------------

def test_readonly_rootfs(rt, bundle):
    b = bundle()
    assert b.config["root"]["readonly"] is True
    r = run_sh(rt, b, "touch /x")
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr, r


def test_writable_rootfs(rt, bundle):
    b = bundle()
    b.config["root"]["readonly"] = False
    r = run_sh(rt, b, "echo hi > /written")
    assert r.returncode == 0, r
    assert read_text(os.path.join(b.rootfs, "written")) == "hi\n"


def test_readonly_paths(rt, bundle):
    b = bundle()
    r = run_sh(rt, b, "echo x > /proc/sys/kernel/hostname; grep ' /proc/sys ' /proc/self/mountinfo")
    assert "Read-only file system" in r.stderr, r
    opts = r.stdout.split()[5].split(",")
    assert "ro" in opts, r.stdout


def test_readonly_path_custom_dir(rt, bundle):
    b = bundle()
    b.tmpfs_at("/data")
    b.linux["readonlyPaths"].append("/data")
    r = run_sh(rt, b, "touch /data/x")
    assert "Read-only file system" in r.stderr, r


def test_masked_paths(rt, bundle):
    b = bundle()
    os.makedirs(os.path.join(b.rootfs, "secretdir"))
    with open(os.path.join(b.rootfs, "secretdir", "key"), "w") as f:
        f.write("s3cret\n")
    with open(os.path.join(b.rootfs, "secretfile"), "w") as f:
        f.write("s3cret\n")
    b.linux["maskedPaths"] += ["/secretdir", "/secretfile", "/does/not/exist"]
    # /proc/kcore is the classic example, but not every kernel has it
    procfile = next(p for p in ("/proc/kcore", "/proc/timer_list", "/proc/keys") if os.path.exists(p))
    assert procfile in b.linux["maskedPaths"]
    r = run_sh(rt, b, f"echo proc=$(wc -c < {procfile}); echo dir=$(ls -A /secretdir | wc -l); "
                      "echo file=$(cat /secretfile | wc -c); echo fw=$(ls -A /sys/firmware | wc -l); "
                      "grep -E ' /(secretdir|sys/firmware) ' /proc/self/mountinfo")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    vals = dict(l.split("=") for l in lines[:4])
    assert vals == {"proc": "0", "dir": "0", "file": "0", "fw": "0"}, r
    for line in lines[4:]:  # masked directories are read-only tmpfs
        assert line.split(" - ")[1].split()[0] == "tmpfs", line


def test_tmpfs_mount_options(rt, bundle):
    b = bundle()
    # The mount point does not exist in the (read-only) rootfs: the runtime creates it.
    b.tmpfs_at("/scratch", ["nosuid", "nodev", "noexec", "size=4m", "mode=1777"], precreate=False)
    r = run_sh(rt, b, "cp /bin/busybox /scratch/bb && echo copied; /scratch/bb true && echo ran; "
                      "dd if=/dev/zero of=/scratch/big bs=1024 count=8192; "
                      "stat -c '%a' /scratch; grep ' /scratch ' /proc/self/mountinfo")
    assert "copied" in r.stdout, r
    assert "ran" not in r.stdout and "Permission denied" in r.stderr, r
    assert "No space left on device" in r.output, r
    lines = r.stdout.splitlines()
    assert "1777" in lines
    mi = [l for l in lines if " /scratch " in l][0]
    assert "noexec" in mi.split()[5].split(",")
    assert "size=4096k" in mi


def test_bind_mount_readonly(rt, bundle, workdir):
    host = os.path.join(workdir, "hostro")
    os.makedirs(host)
    with open(os.path.join(host, "hello"), "w") as f:
        f.write("from-host\n")
    b = bundle()
    b.bind(host, "/ro", ro=True)
    r = run_sh(rt, b, "cat /ro/hello; touch /ro/x")
    assert "from-host" in r.stdout, r
    assert "Read-only file system" in r.stderr, r
    assert not os.path.exists(os.path.join(host, "x"))


def test_bind_mount_file(rt, bundle, workdir):
    host = os.path.join(workdir, "single")
    with open(host, "w") as f:
        f.write("one file\n")
    b = bundle()
    b.bind(host, "/etc/single", ro=True)
    r = run_sh(rt, b, "cat /etc/single")
    assert r.stdout == "one file\n", r


def test_rbind_includes_submounts(rt, bundle, workdir):
    host = os.path.join(workdir, "tree")
    sub = os.path.join(host, "sub")
    os.makedirs(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "grtest", sub], check=True)
    try:
        with open(os.path.join(sub, "inner"), "w") as f:
            f.write("inner\n")
        b = bundle()
        b.bind(host, "/rb", recursive=True)
        b.bind(host, "/nb", recursive=False)
        r = run_sh(rt, b, "echo rb=$(cat /rb/sub/inner 2>/dev/null); echo nb=$(ls -A /nb/sub | wc -l)")
        assert r.returncode == 0, r
        assert "rb=inner" in r.stdout, r
        assert "nb=0" in r.stdout, r
    finally:
        subprocess.run(["umount", "-l", sub])


def test_default_devices(rt, bundle):
    b = bundle()
    script = (
        "for d in null zero full random urandom tty; do [ -c /dev/$d ] && echo dev:$d; done; "
        "[ -e /dev/ptmx ] && echo dev:ptmx; "
        "for l in fd stdin stdout stderr; do echo link:$l=$(readlink /dev/$l); done; "
        "echo x > /dev/null && echo null-ok; "
        "echo zero=$(head -c 5 /dev/zero | wc -c); "
        "echo urandom=$(head -c 7 /dev/urandom | wc -c); "
        "echo x > /dev/full || echo full-enospc; "
        "grep -q ' /dev/pts ' /proc/self/mountinfo && echo pts-mounted; "
        "grep -q ' /dev/shm ' /proc/self/mountinfo && echo shm-mounted"
    )
    r = run_sh(rt, b, script)
    out = r.stdout.split()
    for d in ("null", "zero", "full", "random", "urandom", "tty", "ptmx"):
        assert f"dev:{d}" in out, (d, r)
    assert "link:fd=/proc/self/fd" in out, r
    assert "link:stdin=/proc/self/fd/0" in out
    assert "link:stdout=/proc/self/fd/1" in out
    assert "link:stderr=/proc/self/fd/2" in out
    assert "null-ok" in out and "zero=5" in out and "urandom=7" in out, r
    assert "full-enospc" in out and "No space left on device" in r.stderr, r
    assert "pts-mounted" in out and "shm-mounted" in out


def test_config_device_created(rt, bundle):
    b = bundle()
    b.linux["devices"] = [
        {"path": "/dev/myfull", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/mymem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600, "uid": 0, "gid": 0},
    ]
    b.linux.setdefault("resources", {}).setdefault("devices", []).append(
        {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"})
    r = run_sh(rt, b, "stat -c '%F %t:%T %a' /dev/myfull /dev/mymem; echo x > /dev/myfull; "
                      "head -c 1 /dev/mymem >/dev/null && echo mem-read")
    lines = r.stdout.splitlines()
    assert lines[0] == "character special file 1:7 666", r
    assert lines[1] == "character special file 1:1 600", r
    assert "No space left on device" in r.stderr, r  # it really is the full device
    assert "mem-read" not in r.stdout, "device cgroup must deny a device not allowed"
    assert "Operation not permitted" in r.stderr, r


# --- process and system settings ------------------------------------------------------------

def test_sysctl(rt, bundle):
    b = bundle("cat", "/proc/sys/net/ipv4/ip_forward")
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    r = rt.run(b)
    assert r.returncode == 0 and r.stdout.strip() == "1", r


def test_rlimits(rt, bundle):
    b = bundle()
    b.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768},
                            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    r = run_sh(rt, b, "ulimit -n; ulimit -Hn; ulimit -c")
    assert r.stdout.split() == ["512", "768", "0"], r


def test_user_groups_umask(rt, bundle):
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 3000], "umask": 0o027}
    r = run_sh(rt, b, "id; umask; grep Groups /proc/self/status")
    out = r.stdout
    assert r.returncode == 0, r
    assert "uid=1000" in out and "gid=1001" in out, out
    groups = out.splitlines()[-1].split()[1:]
    assert sorted(groups) == ["2000", "3000"] or sorted(groups) == ["1001", "2000", "3000"], out
    assert "0027" in out.splitlines()[1], out


def test_env_and_cwd(rt, bundle):
    b = bundle()
    b.process["env"] = ["PATH=/bin:/sbin", "FOO=bar baz", "HOME=/root"]
    b.process["cwd"] = "/tmp"
    r = run_sh(rt, b, 'echo "$FOO|$(pwd)|$PATH"')
    assert r.stdout.strip() == "bar baz|/tmp|/bin:/sbin", r


def test_oom_score_adj(rt, bundle):
    b = bundle("cat", "/proc/self/oom_score_adj")
    b.process["oomScoreAdj"] = 500
    r = rt.run(b)
    assert r.stdout.strip() == "500", r


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(rt, bundle, nnp):
    b = bundle("grep", "NoNewPrivs", "/proc/self/status")
    b.process["noNewPrivileges"] = nnp
    r = rt.run(b)
    assert r.stdout.split() == ["NoNewPrivs:", "1" if nnp else "0"], r


def test_hostname(rt, bundle):
    b = bundle()
    b.config["hostname"] = "alpha"
    r = run_sh(rt, b, "hostname; cat /proc/sys/kernel/hostname")
    assert r.stdout.split() == ["alpha", "alpha"], r


@pytest.mark.not_runc("runc 1.1.5 parses but does not apply domainname (runc 1.2 does)")
def test_domainname(rt, bundle):
    b = bundle()
    b.config["hostname"] = "alpha"
    b.config["domainname"] = "example.org"
    r = run_sh(rt, b, "hostname; cat /proc/sys/kernel/domainname")
    assert r.stdout.split() == ["alpha", "example.org"], r


@pytest.mark.not_runc("runc 1.1.5 ignores linux.personality (supported from runc 1.2)")
def test_personality_linux32(rt, bundle):
    b = bundle("uname", "-m")
    b.linux["personality"] = {"domain": "LINUX32"}
    r = rt.run(b)
    assert r.stdout.strip() == "i686", r


def _root_mount_optional_fields(stdout):
    for line in stdout.splitlines():
        f = line.split()
        if len(f) > 5 and f[4] == "/":
            return f[6:f.index("-")]
    raise AssertionError(f"no / in {stdout}")


def test_rootfs_propagation_private(rt, bundle):
    b = bundle("cat", "/proc/self/mountinfo")
    b.linux["rootfsPropagation"] = "private"
    r = rt.run(b)
    assert r.returncode == 0, r
    assert _root_mount_optional_fields(r.stdout) == [], r.stdout


@pytest.mark.not_runc("runc 1.1.5 makes the rootfs mount private before pivot_root, losing 'shared'")
def test_rootfs_propagation_shared(rt, bundle):
    b = bundle("cat", "/proc/self/mountinfo")
    b.linux["rootfsPropagation"] = "shared"
    r = rt.run(b)
    assert r.returncode == 0, r
    opt = _root_mount_optional_fields(r.stdout)
    assert any(o.startswith("shared:") for o in opt), (opt, r.stdout)


def test_seccomp_kill_action(rt, bundle):
    b = bundle()
    b.tmpfs_at("/scratch")
    b.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": SCMP_ARCHES,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}
    r = run_sh(rt, b, "mkdir /scratch/d; echo rc=$?")
    assert "rc=159" in r.stdout, r  # 128 + SIGSYS


@pytest.mark.gureum_only
def test_sysctl_outside_container_namespaces_refused(rt, bundle, cid):
    """A sysctl that no namespace of the container owns would change the host: refused, by
    name (as runc does), and nothing is left behind."""
    from helpers import assert_no_residue
    b = bundle("true")
    b.linux["sysctl"] = {"vm.swappiness": "60"}
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and 'linux.sysctl["vm.swappiness"]' in r.stderr, r
    assert_no_residue(rt, cid, str(b))
    b.linux["namespaces"] = [n for n in b.linux["namespaces"] if n["type"] != "network"]
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and "network namespace" in r.stderr, r
