"""Shared helpers for the gureum-runtime integration tests (imported by conftest and tests).

Everything here talks to real processes: the runtime under test (gureum-runtime, or runc/crun
for validating the suite), /proc, /sys/fs/cgroup and the mount table of the host.
"""
import copy
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MKBUNDLE = os.path.join(REPO, "scripts", "mkbundle.sh")
_rt = os.environ.get("GUREUM_RUNTIME") or os.path.join(REPO, "build", "src", "runtime", "gureum-runtime")
if "/" not in _rt:  # a bare name such as "runc": look it up in PATH
    _rt = shutil.which(_rt) or _rt
RUNTIME = os.path.abspath(_rt)
RUNTIME_NAME = os.path.basename(RUNTIME)
IS_RUNC = RUNTIME_NAME.startswith("runc")
IS_CRUN = RUNTIME_NAME.startswith("crun")
IS_GUREUM = not (IS_RUNC or IS_CRUN)

# Default per-call timeout: generous, so that a slow machine never fails a test, but bounded,
# so that a hung runtime fails it instead of hanging the suite.
TIMEOUT = float(os.environ.get("GUREUM_TEST_TIMEOUT", "60"))
if os.environ.get("GUREUM_ASAN"):
    TIMEOUT *= 2  # the sanitized runtime is several times slower

ALL_CAPS_DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


class RuntimeError_(AssertionError):
    pass


def wait_for(predicate, timeout=TIMEOUT, interval=0.01, what="condition"):
    """Poll predicate() until it returns a truthy value; return that value or fail."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def read_text(path, default=None):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        if default is not None:
            return default
        raise


def wait_file(path, timeout=TIMEOUT, contains=None):
    """Wait until path exists (and is non-empty, and contains `contains` if given)."""
    def ready():
        text = read_text(path, default="")
        if not text:
            return None
        if contains is not None and contains not in text:
            return None
        return text
    return wait_for(ready, timeout=timeout, what=f"{path}" + (f" to contain {contains!r}" if contains else ""))


# ----------------------------------------------------------------------------------------------
# processes


def proc_status(pid):
    """/proc/PID/status as a dict, or None if the process is gone."""
    try:
        text = read_text(f"/proc/{pid}/status")
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def proc_state(pid):
    """Single-letter state (R, S, Z, ...) or None if the pid does not exist."""
    try:
        stat = read_text(f"/proc/{pid}/stat")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def ns_inode(pid, kind):
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def cap_eff(pid="self"):
    return int(proc_status(pid)["CapEff"], 16)


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make this (pytest) process a child subreaper, as conmon and containerd-shim are for the
    containers they supervise: detached container processes are re-parented to us instead of
    to the host's PID 1 (which on some machines never reaps), and reap_orphans() reaps them."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_own_children = set()   # pids of Popen objects we still wait for ourselves


def register_child(pid):
    _own_children.add(pid)


def unregister_child(pid):
    _own_children.discard(pid)


def reap_orphans():
    """Reap zombies that were re-parented to us (never a child subprocess is still waiting for)."""
    me = str(os.getpid())
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in _own_children:
            continue
        try:
            stat = read_text(f"/proc/{pid}/stat")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and fields[1] == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def processes_under(path):
    """Pids of processes whose root or cwd or executable lives under `path` (a bundle)."""
    path = os.path.realpath(path)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        for link in ("root", "cwd", "exe"):
            try:
                target = os.readlink(f"/proc/{name}/{link}")
            except OSError:
                continue
            if target == path or target.startswith(path + "/"):
                if pid_alive(int(name)):
                    found.append(int(name))
                break
    return found


def processes_with_cmdline(text):
    found = []
    needle = text.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle in cmd and pid_alive(int(name)):
            found.append(int(name))
    return found


# ----------------------------------------------------------------------------------------------
# mounts and cgroups


def mountinfo(pid="self"):
    rows = []
    for line in read_text(f"/proc/{pid}/mountinfo").splitlines():
        pre, _, post = line.partition(" - ")
        f = pre.split()
        fstype, source, superopts = (post.split() + ["", "", ""])[:3]
        rows.append({"id": f[0], "parent": f[1], "root": f[3], "mountpoint": f[4],
                     "options": f[5], "optional": f[6:], "fstype": fstype,
                     "source": source, "superopts": superopts, "line": line})
    return rows


def mounts_under(path):
    path = os.path.realpath(path)
    return [m for m in mountinfo() if m["mountpoint"] == path or m["mountpoint"].startswith(path + "/")]


def unmount_all_under(path):
    """Lazily unmount everything below path, deepest first. Returns the mount points found."""
    leaked = [m["mountpoint"] for m in mounts_under(path)]
    for mp in sorted(set(leaked), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return leaked


def cgroup_mounts():
    """{controller or '' (cgroup2): mountpoint} from the host mount table."""
    out = {}
    for m in mountinfo():
        if m["fstype"] == "cgroup2":
            out.setdefault("", m["mountpoint"])
        elif m["fstype"] == "cgroup":
            for opt in m["superopts"].split(","):
                if opt in ("rw", "ro") or opt.startswith("release_agent") or opt in ("nsroot",):
                    continue
                out.setdefault(opt, m["mountpoint"])
    return out


def cgroup_file(pid, controller, v1_name, v2_name=None):
    """Host path of a cgroup control file of process pid, on v1, v2 or hybrid hierarchies.

    controller: 'pids', 'memory', ...; v1_name e.g. 'memory.limit_in_bytes', v2_name 'memory.max'.
    """
    v2_name = v2_name or v1_name
    mounts = cgroup_mounts()
    v2_path = None
    for line in read_text(f"/proc/{pid}/cgroup").splitlines():
        hid, ctrls, path = line.split(":", 2)
        if hid == "0" and ctrls == "":
            v2_path = path
            continue
        if controller in ctrls.split(",") and controller in mounts:
            cand = os.path.join(mounts[controller], path.lstrip("/"), v1_name)
            if os.path.exists(cand):
                return cand
    if v2_path is not None and "" in mounts:
        cand = os.path.join(mounts[""], v2_path.lstrip("/"), v2_name)
        if os.path.exists(cand):
            return cand
    raise AssertionError(f"no cgroup file {v1_name}/{v2_name} for controller {controller} of pid {pid}")


def cgroup_dirs_named(cid, maxdepth=4):
    """Directories under /sys/fs/cgroup whose name contains the container id."""
    found = []
    base = "/sys/fs/cgroup"
    base_depth = base.rstrip("/").count("/")
    for dirpath, dirnames, _ in os.walk(base):
        depth = dirpath.count("/") - base_depth
        for d in dirnames:
            if cid in d:
                found.append(os.path.join(dirpath, d))
        if depth >= maxdepth:
            dirnames[:] = []
    return found


# ----------------------------------------------------------------------------------------------
# bundles


class Bundle:
    """An OCI bundle in a per-test directory. Edit .config (a dict); it is written to
    config.json whenever the bundle is passed to the runtime helper (or on save())."""

    def __init__(self, path, config):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")
        self.config = config
        self._shared = None

    def __fspath__(self):
        self.save()
        return self.path

    def __str__(self):
        return self.__fspath__()

    def save(self):
        tmp = os.path.join(self.path, "config.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.config, f, indent=2)
        os.replace(tmp, os.path.join(self.path, "config.json"))

    # --- convenience editors -------------------------------------------------------------
    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def set_args(self, *args):
        self.process["args"] = list(args)
        return self

    def sh(self, script):
        """Make the container process `sh -c SCRIPT`."""
        return self.set_args("sh", "-c", script)

    def add_mount(self, destination, type_, source, options=(), precreate=True):
        m = {"destination": destination, "type": type_, "source": source}
        if options:
            m["options"] = list(options)
        self.config.setdefault("mounts", []).append(m)
        if not precreate:
            return m
        # Create the mount point in the rootfs so that tests do not depend on the runtime
        # creating it in a read-only rootfs.
        target = os.path.join(self.rootfs, destination.lstrip("/"))
        src_is_file = type_ == "bind" and os.path.isfile(source)
        if src_is_file:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        else:
            os.makedirs(target, exist_ok=True)
        return m

    def bind(self, host_path, destination, ro=False, recursive=True):
        opts = ["rbind" if recursive else "bind", "ro" if ro else "rw"]
        return self.add_mount(destination, "bind", host_path, opts)

    def shared_dir(self, destination="/shared", mode=0o777):
        """A host directory bind-mounted read-write at `destination`; returns its host path."""
        if self._shared is None:
            host = os.path.join(self.path, "shared")
            os.makedirs(host, exist_ok=True)
            os.chmod(host, mode)
            self.bind(host, destination)
            self._shared = host
        return self._shared

    def namespaces(self):
        return [n["type"] for n in self.linux.get("namespaces", [])]

    def add_namespace(self, type_, path=None):
        nss = self.linux.setdefault("namespaces", [])
        nss[:] = [n for n in nss if n["type"] != type_]
        n = {"type": type_}
        if path:
            n["path"] = path
        nss.append(n)

    def remove_namespace(self, type_):
        nss = self.linux.setdefault("namespaces", [])
        nss[:] = [n for n in nss if n["type"] != type_]

    def add_caps(self, *caps):
        c = self.process.setdefault("capabilities", {})
        for s in CAP_SETS:
            lst = c.setdefault(s, [])
            for cap in caps:
                if cap not in lst:
                    lst.append(cap)

    def tmpfs_at(self, destination, options=("rw", "nosuid", "nodev", "mode=1777", "size=16m"),
                 precreate=True):
        return self.add_mount(destination, "tmpfs", "tmpfs", options, precreate=precreate)


def build_template(path):
    subprocess.run([MKBUNDLE, path], check=True, timeout=TIMEOUT)
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def copy_bundle(template_dir, template_config, dest):
    shutil.copytree(template_dir, dest, symlinks=True)
    os.chmod(dest, 0o755)
    return Bundle(dest, copy.deepcopy(template_config))


# ----------------------------------------------------------------------------------------------
# the runtime


class Result:
    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return (f"Result(rc={self.returncode}, argv={self.argv!r},\n  stdout={self.stdout[-2000:]!r},"
                f"\n  stderr={self.stderr[-2000:]!r})")


class Runtime:
    """Calls the runtime under test with a private --root. Never uses a shell.

    rt(*args, check=True, input=None, timeout=TIMEOUT) -> Result
    Output goes to files, not pipes: a detached container inherits the runtime's stdio, and a
    pipe held open by it would make the caller wait for the container's exit.
    """

    def __init__(self, binary, root, workdir):
        self.binary = binary
        self.root = root
        self.workdir = workdir
        self.ids = []
        self._n = 0
        self._popens = []

    def new_id(self):
        cid = "gr-" + secrets.token_hex(5)
        self.ids.append(cid)
        return cid

    def __call__(self, *args, check=True, input=None, timeout=TIMEOUT, env=None, cwd=None,
                 global_args=()):
        reap_orphans()
        argv = [self.binary, "--root", self.root] + [str(a) for a in global_args] + \
            [os.fspath(a) if isinstance(a, (Bundle, os.PathLike)) else str(a) for a in args]
        self._n += 1
        out_path = os.path.join(self.workdir, f".rt{self._n}.out")
        err_path = os.path.join(self.workdir, f".rt{self._n}.err")
        if isinstance(input, str):
            input = input.encode()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                p = subprocess.run(argv, stdout=out, stderr=err,
                                   input=input, stdin=None if input is not None else subprocess.DEVNULL,
                                   timeout=timeout, env=env, cwd=cwd)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                raise AssertionError(f"runtime call timed out after {timeout}s: {argv}\n"
                                     f"stderr: {read_text(err_path, '')[-2000:]}")
        res = Result(argv, rc, read_text(out_path, ""), read_text(err_path, ""))
        if check and rc != 0:
            raise RuntimeError_(f"runtime failed: {res!r}")
        return res

    def popen(self, *args, global_args=()):
        """Start the runtime in the background (e.g. a foreground `run`); returns
        (Popen, stdout path, stderr path). The caller waits for it (p.wait(timeout))."""
        reap_orphans()
        argv = [self.binary, "--root", self.root] + [str(a) for a in global_args] + \
            [os.fspath(a) if isinstance(a, (Bundle, os.PathLike)) else str(a) for a in args]
        self._n += 1
        out_path = os.path.join(self.workdir, f".rt{self._n}.out")
        err_path = os.path.join(self.workdir, f".rt{self._n}.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        register_child(p.pid)
        self._popens.append(p)
        return p, out_path, err_path

    # --- verbs ------------------------------------------------------------------------------
    def state(self, cid):
        return json.loads(self("state", cid).stdout)

    def status(self, cid):
        r = self("state", cid, check=False)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)["status"]

    def wait_status(self, cid, *statuses, timeout=TIMEOUT):
        return wait_for(lambda: self.status(cid) in statuses, timeout=timeout,
                        what=f"container {cid} to become {'/'.join(statuses)}")

    def create(self, bundle, cid=None, *extra, check=True, **kw):
        cid = cid or self.new_id()
        self("create", "--bundle", bundle, *extra, cid, check=check, **kw)
        return cid

    def start_detached(self, bundle, cid=None, *extra):
        """create + start; returns (cid, host pid of init)."""
        cid = self.create(bundle, cid, *extra)
        pid = self.state(cid)["pid"]
        self("start", cid)
        return cid, pid

    def run(self, bundle, cid=None, *extra, **kw):
        """Foreground `run`; returns the Result (returncode is the container's exit code)."""
        cid = cid or self.new_id()
        kw.setdefault("check", False)
        return self("run", "--bundle", bundle, *extra, cid, **kw)

    def exec_(self, cid, *args, opts=(), **kw):
        """exec OPTS... CID ARGS...; check=False by default (returncode is the process's)."""
        kw.setdefault("check", False)
        return self("exec", *opts, cid, *args, **kw)

    def cleanup(self):
        """Force-delete every container this test created or left in its --root."""
        for p in self._popens:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            unregister_child(p.pid)
        ids = list(self.ids)
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                if name not in ids and os.path.isdir(os.path.join(self.root, name)):
                    ids.append(name)
        for cid in ids:
            try:
                self("delete", "--force", cid, check=False, timeout=30)
            except AssertionError:
                pass


def kill_processes(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def assert_no_residue(rt, cid, bundle_path, timeout=15):
    """After a failed create (or a delete): no state, no process, no cgroup, no mount left."""
    assert rt("state", cid, check=False).returncode != 0, f"state of {cid} still answers"
    assert not os.path.exists(os.path.join(rt.root, cid)), f"state dir {rt.root}/{cid} left behind"
    wait_for(lambda: not processes_under(bundle_path), timeout=timeout,
             what=f"processes of {bundle_path} to exit: {processes_under(bundle_path)}")
    wait_for(lambda: not cgroup_dirs_named(cid), timeout=timeout,
             what=f"cgroups of {cid} to be removed: {cgroup_dirs_named(cid)}")
    leaked = [m["line"] for m in mounts_under(bundle_path)]
    assert not leaked, f"mounts left under the bundle: {leaked}"
    leaked = [m["line"] for m in mountinfo() if cid in m["line"]]
    assert not leaked, f"mounts mentioning {cid} left: {leaked}"
