"""The issue's kill test: gureumd is killed with SIGKILL at random moments while a client runs a
random loop of create/start/exec/stop/delete, and restarted each time (at least 50 kills). After
every restart: every instance the database knows is consistent with reality (its reported state
against its supervisor and its cgroup), nothing is left half-made (no "Pending" instance: an
interrupted create was rolled back, an interrupted delete finished), no orphaned cgroup, mount,
bundle or supervisor exists for a name the database does not know, and no instance whose
create had succeeded (and that was not deleted since) is lost. At the end everything is deleted
and the host must be clean.

The randomness is seeded; the seed is printed (and kept in the failure message) so a run can be
repeated: GUREUM_KILL_SEED=N. GUREUM_KILLS sets the number of kills (default 50).

Run: /usr/bin/python3 -m pytest -q -s tests/integration/test_daemon_kill.py
"""
import glob
import http.client
import os
import random
import signal
import threading
import time

import pytest

from daemon import Gureumd, cgroup_parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

KILLS = int(os.environ.get("GUREUM_KILLS", "50"))
SLEEPER = ["sh", "-c", "exec sleep 100000"]


def cgroup_roots(d):
    """This daemon's cgroup parent in every hierarchy (v1 controllers and the unified one)."""
    parent = cgroup_parent(d.run_dir)
    return [p for p in glob.glob(f"/sys/fs/cgroup/*/{parent}") + glob.glob(f"/sys/fs/cgroup/{parent}")
            if os.path.isdir(p)]


class Killed(Exception):
    pass


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def supervisor_pid(d, name):
    try:
        with open(os.path.join(d.run_dir, "instances", name, "supervisor.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pid if pid_alive(pid) else 0


def cgroup_procs(d, name):
    pids = set()
    for cg in [os.path.join(r, name) for r in cgroup_roots(d) if os.path.isdir(os.path.join(r, name))]:
        for root, _, files in os.walk(cg):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
    return pids


def mounts_under(path):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


def processes_of(d):
    """{pid: argv} of every process but gureumd whose command line names our directories."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (d.proc and int(entry) == d.proc.pid):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == "dnsmasq":
            continue  # a network's: it outlives gureumd as instances do (one per network)
        if any(d.run_dir in a or d.state_dir in a for a in argv) and pid_alive(int(entry)):
            out[int(entry)] = argv
    return out


def named(argv):
    return argv[argv.index("--name") + 1] if "--name" in argv[:-1] else None


class Client:
    """The random workload: runs in a thread until the daemon dies under it."""

    def __init__(self, d, rng, names, confirmed, lock):
        self.d, self.rng, self.names, self.confirmed, self.lock = d, rng, names, confirmed, lock
        self.unexpected = []
        self.ops = 0

    def call(self, method, path, body=None):
        try:
            st, _, env = self.d.request(method, path, body=body, timeout=30)
        except (OSError, http.client.HTTPException) as e:
            raise Killed() from e
        if st not in (200, 202, 400, 404, 409):
            self.unexpected.append(f"{method} {path}: HTTP {st}: {env}")
        return st, env

    def wait(self, env):
        try:
            return self.d.wait_operation(env["operation"], timeout=30)
        except (OSError, http.client.HTTPException, AssertionError) as e:
            raise Killed() from e

    def step(self):
        name = self.rng.choice(self.names)
        what = self.rng.choice(["create", "create", "start", "stop", "exec", "exec", "delete", "pause", "list"])
        self.ops += 1
        if what == "create":
            st, env = self.call("POST", "/1.0/instances", {"name": name, "source": {"type": "image", "alias": "busybox"},
                                                           "command": SLEEPER, "start": self.rng.random() < 0.7})
            if st == 202 and self.wait(env)["status"] == "Success":
                with self.lock:
                    self.confirmed.add(name)
        elif what == "delete":
            with self.lock:
                self.confirmed.discard(name)  # from now on its fate is open
            st, env = self.call("DELETE", f"/1.0/instances/{name}?force=1")
            if st == 202:
                self.wait(env)
        elif what in ("start", "stop", "pause"):
            body = {"action": what}
            if what == "stop":
                body.update(timeout=1, force=self.rng.random() < 0.5)
            st, env = self.call("PUT", f"/1.0/instances/{name}/state", body)
            if st == 202:
                self.wait(env)
        elif what == "exec":
            st0, before = self.call("GET", f"/1.0/instances/{name}/state")
            st, env = self.call("POST", f"/1.0/instances/{name}/exec", {"command": ["echo", "alive"]})
            if st == 202:
                op = self.wait(env)
                if op["status"] == "Success" and (op["metadata"].get("return") != 0 or
                                                  op["metadata"].get("stdout") != "alive\n"):
                    # A failed exec is fine only when the container went away under it (a stop sent
                    # by the gureumd that was killed may still be under way in its supervisor).
                    _, after = self.call("GET", f"/1.0/instances/{name}/state")
                    pid0 = before["metadata"]["pid"] if st0 == 200 else None
                    md = after.get("metadata") or {}
                    if md.get("status") == "Running" and md.get("pid") == pid0:
                        self.unexpected.append(f"exec in {name}: {op['metadata']}")
        else:
            self.call("GET", "/1.0/instances?recursion=1")

    def run(self):
        try:
            while True:
                self.step()
        except Killed:
            pass
        except Exception as e:  # noqa: BLE001: reported by the test
            self.unexpected.append(f"client crashed: {e!r}")


def check_consistent(d, prefix, confirmed, where, settle=10.0):
    """Asserts consistency; a workload that was being started when gureumd died may still be on
    its way (supervisor up, container not yet): such states get `settle` seconds to resolve."""
    deadline = time.monotonic() + settle
    while True:
        problems, known = find_problems(d, prefix, confirmed)
        if not problems:
            return known
        if time.monotonic() > deadline:
            raise AssertionError(f"{where}:\n  " + "\n  ".join(problems))
        time.sleep(0.1)


def find_problems(d, prefix, confirmed):
    problems = []
    env = d.get("/1.0/instances?recursion=1", expect=200)
    known = {i["name"]: i for i in env["metadata"]}
    for name in confirmed:
        if name not in known:
            problems.append(f"{name}: lost (its create had succeeded)")
    for name, inst in known.items():
        st = d.get(f"/1.0/instances/{name}/state", expect=200)["metadata"]
        status = st["status"]
        sup = supervisor_pid(d, name)
        procs = cgroup_procs(d, name)
        if status in ("Pending", "Error"):
            problems.append(f"{name}: {status} after reconciliation: {st}")
        elif status in ("Running", "Frozen"):
            if not pid_alive(st["pid"]):
                problems.append(f"{name}: {status} but its pid {st['pid']} is gone")
            if not sup:
                problems.append(f"{name}: {status} without a supervisor")
            if st["pid"] not in procs:
                problems.append(f"{name}: pid {st['pid']} is not in its cgroup {cgroup_parent(d.run_dir)}/{name} "
                                f"({sorted(procs)})")
        elif status == "Starting":  # a start (or restart) under way: it must settle
            problems.append(f"{name}: still Starting ({st}){'' if sup else ' without a supervisor'}")
        elif status == "Stopped":
            if sup:
                problems.append(f"{name}: Stopped but its supervisor {sup} lives")
            if procs:
                problems.append(f"{name}: Stopped but processes {sorted(procs)} run in its cgroup")
        if inst["status"] != status and "Pending" not in (inst["status"], status):
            # the two GETs are not atomic, but nothing changes an instance now
            problems.append(f"{name}: GET says {inst['status']}, GET state says {status}")
    # Orphans: anything on the host for one of our names that the database does not know.
    for path in glob.glob(os.path.join(d.state_dir, "instances", prefix + "*")):
        if os.path.basename(path) not in known:
            problems.append(f"orphaned bundle {path}")
    for path in glob.glob(os.path.join(d.run_dir, "instances", prefix + "*")):
        name = os.path.basename(path)
        if name not in known and supervisor_pid(d, name):
            problems.append(f"orphaned supervisor {supervisor_pid(d, name)} for {name}")
    for root in cgroup_roots(d):  # this daemon's parent: every child must be a known instance
        for entry in os.listdir(root):
            path = os.path.join(root, entry)
            if os.path.isdir(path) and entry not in known:
                problems.append(f"orphaned cgroup {path}")
    for pid, argv in processes_of(d).items():
        name = named(argv)
        if name is None or name not in known:
            problems.append(f"orphaned process {pid}: {' '.join(argv)}")
    for mp in mounts_under(os.path.join(d.state_dir, "instances")):
        name = mp[len(os.path.join(d.state_dir, "instances")) + 1:].split("/")[0]
        if name not in known or known[name]["status"] == "Stopped":
            problems.append(f"orphaned mount {mp}")
    return problems, known


def test_sigkill_during_random_lifecycle():
    seed = int(os.environ.get("GUREUM_KILL_SEED") or random.randrange(1 << 32))
    print(f"\ntest_daemon_kill: seed {seed} (repeat with GUREUM_KILL_SEED={seed}), {KILLS} kills")
    rng = random.Random(seed)
    prefix = f"k{seed % 100000:05d}-"
    names = [f"{prefix}{i}" for i in range(4)]
    confirmed, lock = set(), threading.Lock()
    d = Gureumd()
    unexpected = []
    total_ops = 0
    t_start = time.monotonic()
    try:
        d.start()
        for k in range(KILLS):
            client = Client(d, random.Random(rng.randrange(1 << 32)), names, confirmed, lock)
            t = threading.Thread(target=client.run, daemon=True)
            t.start()
            time.sleep(rng.uniform(0.02, 0.8))
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait()
            d.check_stderr_clean()
            t.join(timeout=60)
            assert not t.is_alive(), f"seed {seed}, kill {k}: the client hangs after the kill"
            unexpected += [f"kill {k}: {u}" for u in client.unexpected]
            total_ops += client.ops
            d.start()
            with lock:
                snapshot = set(confirmed)
            check_consistent(d, prefix, snapshot, f"seed {seed}, after kill {k + 1}")
        assert not unexpected, f"seed {seed}: unexpected replies:\n  " + "\n  ".join(unexpected)
        # Everything goes; the host must be clean.
        for name in d.get("/1.0/instances", expect=200)["metadata"]:
            st, _, env = d.request("DELETE", f"{name}?force=1")
            assert st == 202, env
            op = d.wait_operation(env["operation"])
            assert op["status"] == "Success", op
        check_consistent(d, prefix, set(), f"seed {seed}, after deleting everything")
        assert d.get("/1.0/instances", expect=200)["metadata"] == []
        assert not glob.glob(os.path.join(d.state_dir, "instances", prefix + "*"))
        assert not processes_of(d), f"seed {seed}: processes left: {processes_of(d)}"
        d.stop()
        print(f"test_daemon_kill: {KILLS} kills, {total_ops} requests, {time.monotonic() - t_start:.1f} s")
    finally:
        # Leave nothing behind even when the test failed: cleanup() force-deletes what the
        # database still knows (restarting the daemon if needed), then checks the host for
        # supervisors, cgroups, processes and mounts of this daemon (removed and reported).
        d.cleanup()
