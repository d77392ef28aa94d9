"""Every verb of the CLI: create/start/state/kill/delete, run, list, ps, pause/resume, update,
spec, features, kill --all, delete --force, --pid-file, --log/--log-format."""
import json
import os
import signal
import time

import pytest

from helpers import (IS_GUREUM, cgroup_dirs_named, cgroup_file, pid_alive, proc_state, read_text, wait_file,
                     wait_for)


def test_lifecycle_create_start_state_kill_delete(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    st = rt.state(cid)
    for key in ("ociVersion", "id", "status", "pid", "bundle"):
        assert key in st, f"state lacks {key}: {st}"
    assert st["id"] == cid
    assert st["status"] == "created"
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path)
    assert isinstance(st.get("annotations", {}), dict)
    if IS_GUREUM:
        assert "created" in st, f"gureum state has a 'created' timestamp: {st}"
    pid = st["pid"]
    assert pid > 0 and pid_alive(pid)
    # created: the user process has not been executed yet
    assert "sleep" not in read_text(f"/proc/{pid}/cmdline", "")

    rt("start", cid)
    st = rt.state(cid)
    assert st["status"] == "running" and st["pid"] == pid
    wait_for(lambda: b"sleep" in open(f"/proc/{pid}/cmdline", "rb").read(), what="exec of sleep")

    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    st = rt.state(cid)
    assert st["status"] == "stopped"

    rt("delete", cid)
    r = rt("state", cid, check=False)
    assert r.returncode != 0, "state of a deleted container must fail"
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_start_twice_fails(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt.start_detached(b, cid)
    r = rt("start", cid, check=False)
    assert r.returncode != 0, "start of a running container must fail"


def test_delete_running_without_force_fails(rt, bundle, cid):
    b = bundle("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    r = rt("delete", cid, check=False)
    assert r.returncode != 0
    assert pid_alive(pid)
    assert rt.status(cid) == "running"


def test_kill_default_signal_is_sigterm(rt, bundle, cid):
    b = bundle()
    shared = b.shared_dir()
    b.sh("trap 'echo TERM > /shared/sig; exit 0' TERM; echo ready > /shared/ready; "
         "while true; do sleep 0.1; done")
    rt.start_detached(b, cid)
    wait_file(f"{shared}/ready")
    rt("kill", cid)
    assert wait_file(f"{shared}/sig").strip() == "TERM"
    rt.wait_status(cid, "stopped")


def test_kill_signal_by_number_and_name(rt, bundle, cid):
    b = bundle()
    shared = b.shared_dir()
    b.sh("trap 'echo USR1 >> /shared/sig' USR1; trap 'echo HUP >> /shared/sig' HUP; "
         "echo ready > /shared/ready; while true; do sleep 0.1; done")
    rt.start_detached(b, cid)
    wait_file(f"{shared}/ready")
    rt("kill", cid, "SIGUSR1")
    wait_file(f"{shared}/sig", contains="USR1")
    rt("kill", cid, str(int(signal.SIGHUP)))
    wait_file(f"{shared}/sig", contains="HUP")
    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")


def test_run_returns_exit_code(rt, bundle, cid):
    b = bundle("sh", "-c", "echo out; echo err >&2; exit 3")
    r = rt.run(b, cid)
    assert r.returncode == 3, r
    assert "out" in r.stdout
    assert "err" in r.stderr
    # run deletes the container when it exits
    assert rt("state", cid, check=False).returncode != 0


def test_run_passes_stdin(rt, bundle, cid):
    b = bundle("sh", "-c", "read line; echo got:$line")
    r = rt.run(b, cid, input="hello\n")
    assert r.returncode == 0, r
    assert "got:hello" in r.stdout


def test_run_killed_by_signal_returns_128_plus_signal(rt, bundle, cid):
    # A pid namespace's init ignores signals sent from inside it: share the host's instead.
    b = bundle("sh", "-c", "kill -KILL $$")
    b.remove_namespace("pid")
    r = rt.run(b, cid)
    assert r.returncode == 137, r


def test_run_detach(rt, bundle, cid):
    b = bundle()
    shared = b.shared_dir()
    b.sh("echo $$ > /shared/pid; sleep 1000")
    t0 = time.monotonic()
    rt("run", "--detach", "--bundle", b, cid)
    assert time.monotonic() - t0 < 30
    assert rt.status(cid) == "running"
    assert wait_file(f"{shared}/pid").strip() == "1"
    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt("delete", cid)


def test_run_reaps_container_no_zombie(rt, bundle, cid, workdir):
    b = bundle("sh", "-c", "sleep 0.01 & exit 5")
    pidfile = os.path.join(workdir, "run.pid")
    r = rt.run(b, cid, "--pid-file", pidfile)
    assert r.returncode == 5, r
    pid = int(read_text(pidfile).strip())
    # After run returns, the init is neither alive nor a zombie (or the pid was reused by an
    # unrelated process: then it is not in the container's pid namespace any more).
    st = proc_state(pid)
    assert st is None or st != "Z", f"container init {pid} left as a zombie"


def test_exited_container_state_stopped_then_delete(rt, bundle, cid):
    b = bundle("sh", "-c", "exit 0")
    _, pid = rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped")
    st = rt.state(cid)
    assert st["status"] == "stopped"
    rt("delete", cid)
    assert rt("state", cid, check=False).returncode != 0
    wait_for(lambda: proc_state(pid) != "Z", what=f"zombie {pid} to be reaped")


def test_state_survives_runtime_and_detects_dead_init(rt, bundle, cid):
    """State lives on disk, not in a runtime process; when the init dies behind the runtime's
    back (and its pid may be reused), state still reports stopped."""
    b = bundle("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    # every runtime invocation has exited: state comes from disk
    assert rt.status(cid) == "running"
    os.kill(pid, signal.SIGKILL)
    rt.wait_status(cid, "stopped")
    assert rt.state(cid)["status"] == "stopped"
    # a later status query must stay stopped (no flip back to running on pid reuse)
    assert rt.status(cid) == "stopped"
    rt("delete", cid)


def test_kill_all(rt, bundle, cid):
    """kill --all signals every process of the container; with the host pid namespace shared
    killing the init alone would leave the children running."""
    b = bundle()
    b.remove_namespace("pid")
    shared = b.shared_dir()
    b.sh("sleep 1000 & sleep 1001 & echo ready > /shared/ready; wait")
    rt.start_detached(b, cid)
    wait_file(f"{shared}/ready")
    pids = wait_for(lambda: (lambda p: p if len(p) >= 3 else None)(json.loads(rt("ps", "--format", "json", cid).stdout)),
                    what="three processes in ps")
    rt("kill", "--all", cid, "KILL")
    wait_for(lambda: not any(pid_alive(p) for p in pids), what=f"all of {pids} to die")
    rt.wait_status(cid, "stopped")


def test_delete_force_running(rt, bundle, cid):
    b = bundle("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    rt("delete", "--force", cid)
    assert rt("state", cid, check=False).returncode != 0
    wait_for(lambda: not pid_alive(pid), what=f"init {pid} to die")


def test_delete_force_created(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    rt("delete", "--force", cid)
    assert rt("state", cid, check=False).returncode != 0
    wait_for(lambda: not pid_alive(pid), what=f"init {pid} to die")


def test_pid_file(rt, bundle, cid, workdir):
    b = bundle("sleep", "1000")
    pidfile = os.path.join(workdir, "init.pid")
    rt("create", "--bundle", b, "--pid-file", pidfile, cid)
    text = read_text(pidfile)
    assert text.strip().isdigit(), repr(text)
    assert int(text) == rt.state(cid)["pid"]


def test_log_json_on_failure(rt, bundle, cid, workdir):
    b = bundle("/does/not/exist")
    log = os.path.join(workdir, "rt.log")
    r = rt("run", "--bundle", b, cid, check=False, global_args=("--log", log, "--log-format", "json"))
    assert r.returncode != 0
    entries = []
    for line in read_text(log).splitlines():
        line = line.strip()
        if line:
            entries.append(json.loads(line))  # every line is a JSON object
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, f"no level=error entry in {entries}"
    assert any("msg" in e or "message" in e for e in errors)


def test_list_table_and_json(rt, bundle):
    b = bundle("sleep", "1000")
    c1, pid1 = rt.start_detached(b, rt.new_id())
    c2 = rt.create(b, rt.new_id())
    table = rt("list").stdout
    lines = table.strip().splitlines()
    assert lines[0].split()[:3] == ["ID", "PID", "STATUS"], lines[0]
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    assert rows[c1][2] == "running" and rows[c1][1] == str(pid1)
    assert rows[c2][2] == "created"
    q = rt("list", "-q").stdout.split()
    assert sorted(q) == sorted([c1, c2])
    data = json.loads(rt("list", "--format", "json").stdout)
    by_id = {d["id"]: d for d in data}
    assert by_id[c1]["status"] == "running" and by_id[c1]["pid"] == pid1
    assert by_id[c2]["status"] == "created"
    assert os.path.realpath(by_id[c1]["bundle"]) == os.path.realpath(b.path)


def test_list_empty(rt):
    r = rt("list", "--format", "json")
    assert json.loads(r.stdout) in ([], None)


def test_ps_json_and_table(rt, bundle, cid):
    b = bundle()
    shared = b.shared_dir()
    b.sh("sleep 1000 & echo ready > /shared/ready; wait")
    _, pid = rt.start_detached(b, cid)
    wait_file(f"{shared}/ready")
    pids = wait_for(lambda: (lambda p: p if len(p) >= 2 else None)(json.loads(rt("ps", "--format", "json", cid).stdout)),
                    what="two pids in ps --format json")
    assert all(isinstance(p, int) for p in pids)
    assert pid in pids
    table = rt("ps", cid).stdout.splitlines()
    assert "PID" in table[0].split()
    assert any(str(pid) in l.split() for l in table[1:])
    assert any("sleep" in l for l in table[1:])


def test_pause_resume_freezes(rt, bundle, cid):
    b = bundle()
    shared = b.shared_dir()
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /shared/c.tmp; mv /shared/c.tmp /shared/counter; "
         "sleep 0.02; done")
    rt.start_detached(b, cid)
    counter = f"{shared}/counter"
    first = int(wait_file(counter))
    wait_for(lambda: int(read_text(counter, "0") or 0) > first, what="counter to advance")
    rt("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    c1 = read_text(counter)
    time.sleep(0.5)  # a measurement window, not synchronization: nothing may change in it
    c2 = read_text(counter)
    assert c1 == c2, "counter advanced while paused"
    assert rt.state(cid)["status"] == "paused"
    rt("resume", cid)
    assert rt.state(cid)["status"] == "running"
    wait_for(lambda: int(read_text(counter, "0") or 0) > int(c2), what="counter to advance after resume")


def test_pause_created_fails(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    r = rt("resume", cid, check=False)
    assert r.returncode != 0, "resume of a non-paused container must fail"


def _read_int(path):
    v = read_text(path).strip()
    return v if v == "max" else int(v)


def test_update_pids_limit_and_memory_flags(rt, bundle, cid):
    b = bundle()
    b.linux.setdefault("resources", {})["pids"] = {"limit": 100}
    b.linux["resources"]["memory"] = {"limit": 256 * 1024 * 1024}
    b.set_args("sleep", "1000")
    _, pid = rt.start_detached(b, cid)
    pids_max = cgroup_file(pid, "pids", "pids.max")
    mem_max = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert _read_int(pids_max) == 100
    assert _read_int(mem_max) == 256 * 1024 * 1024
    rt("update", "--pids-limit", "42", "--memory", "128M", cid)
    assert _read_int(pids_max) == 42
    assert _read_int(mem_max) == 128 * 1024 * 1024
    assert rt.state(cid)["status"] == "running"


def test_update_resources_file(rt, bundle, cid, workdir):
    b = bundle("sleep", "1000")
    b.linux.setdefault("resources", {})["pids"] = {"limit": 100}
    _, pid = rt.start_detached(b, cid)
    res = os.path.join(workdir, "resources.json")
    with open(res, "w") as f:
        json.dump({"pids": {"limit": 33}, "memory": {"limit": 96 * 1024 * 1024}}, f)
    rt("update", "--resources", res, cid)
    assert _read_int(cgroup_file(pid, "pids", "pids.max")) == 33
    assert _read_int(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")) == 96 * 1024 * 1024


def test_update_pids_visible_inside(rt, bundle, cid):
    """The new limit is what the container sees in its own cgroup (cgroup namespace)."""
    b = bundle("sleep", "1000")
    b.linux.setdefault("resources", {})["pids"] = {"limit": 100}
    _, pid = rt.start_detached(b, cid)
    rt("update", "--pids-limit", "57", cid)
    r = rt.exec_(cid, "sh", "-c",
                 "for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do "
                 "[ -r $f ] && cat $f && exit 0; done; exit 1")
    assert r.returncode == 0, r
    assert r.stdout.strip() == "57"


def test_spec_writes_config_and_refuses_overwrite(rt, workdir):
    d = os.path.join(workdir, "specdir")
    os.makedirs(d)
    rt("spec", "--bundle", d)
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    assert cfg["ociVersion"].startswith("1.")
    assert cfg["process"]["args"] and cfg["process"]["cwd"] == "/"
    assert cfg["root"]["path"] == "rootfs"
    assert {n["type"] for n in cfg["linux"]["namespaces"]} >= {"pid", "mount", "network", "ipc", "uts"}
    assert any(m["destination"] == "/proc" for m in cfg["mounts"])
    before = read_text(path)
    r = rt("spec", "--bundle", d, check=False)
    assert r.returncode != 0, "spec must refuse to overwrite config.json"
    assert read_text(path) == before


def test_spec_in_cwd(rt, workdir):
    d = os.path.join(workdir, "speccwd")
    os.makedirs(d)
    rt("spec", cwd=d)
    with open(os.path.join(d, "config.json")) as f:
        json.load(f)


def test_features(rt):
    data = json.loads(rt("features").stdout)
    assert data["ociVersionMin"].startswith("1.")
    assert data["ociVersionMax"].startswith("1.")
    for hook in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"):
        assert hook in data.get("hooks", []), hook
    ns = data.get("linux", {}).get("namespaces", [])
    assert {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"} <= set(ns), ns


@pytest.mark.gureum_only
def test_state_created_timestamp_is_rfc3339(rt, bundle, cid):
    import datetime
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    created = rt.state(cid)["created"]
    datetime.datetime.fromisoformat(created.replace("Z", "+00:00")[:26] + "+00:00"
                                    if "." in created else created.replace("Z", "+00:00"))


def test_annotations_in_state(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.config["annotations"] = {"org.gureum.test": "yes"}
    rt("create", "--bundle", b, cid)
    assert rt.state(cid).get("annotations", {}).get("org.gureum.test") == "yes"


def test_run_forwards_signals(rt, bundle, cid):
    """A foreground `run` proxies signals it receives to the container's init."""
    b = bundle()
    shared = b.shared_dir()
    b.sh("trap 'echo got-term > /shared/sig; exit 42' TERM; echo ready > /shared/ready; "
         "while true; do sleep 0.1; done")
    p, out, err = rt.popen("run", "--bundle", b, cid)
    wait_file(f"{shared}/ready")
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=60)
    assert read_text(f"{shared}/sig").strip() == "got-term"
    assert rc == 42, (rc, read_text(err, ""))


def test_exec_killed_by_signal_exit_code(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt.start_detached(b, cid)
    r = rt.exec_(cid, "sh", "-c", "kill -9 $$")
    assert r.returncode == 137, r


def test_kill_created_container(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    wait_for(lambda: not pid_alive(pid), what="init to die")
    rt("delete", cid)


def test_kill_stopped_container_fails(rt, bundle, cid):
    b = bundle("true")
    rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped")
    r = rt("kill", cid, "KILL", check=False)
    assert r.returncode != 0, "kill of a stopped container must fail (spec: not created or running)"


def test_state_of_unknown_container_fails(rt):
    r = rt("state", "gr-does-not-exist", check=False)
    assert r.returncode != 0
    assert r.stdout.strip() == ""


@pytest.mark.gureum_only
def test_state_of_unknown_container_names_it(rt):
    r = rt("state", "gr-does-not-exist", check=False)
    assert r.returncode != 0
    assert "gr-does-not-exist" in r.stderr


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".", ".."])
def test_invalid_container_id_refused(rt, bundle, bad, workdir):
    b = bundle("true")
    before = set(os.listdir(workdir))
    r = rt("create", "--bundle", b, bad, check=False)
    assert r.returncode != 0, f"id {bad!r} accepted"
    assert set(os.listdir(workdir)) - before <= {n for n in os.listdir(workdir) if n.startswith(".rt")}
    assert not os.path.exists(os.path.join(workdir, "escape"))


def test_list_shows_stopped(rt, bundle, cid):
    b = bundle("true")
    rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped")
    data = json.loads(rt("list", "--format", "json").stdout)
    assert [d["status"] for d in data if d["id"] == cid] == ["stopped"]


def test_exec_into_paused_fails(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt.start_detached(b, cid)
    rt("pause", cid)
    r = rt.exec_(cid, "true", timeout=30)
    assert r.returncode != 0, "exec into a paused container must fail (it would hang)"
    rt("resume", cid)
    assert rt.exec_(cid, "true").returncode == 0


def _cpu_files(pid):
    try:
        return ("v1", cgroup_file(pid, "cpu", "cpu.cfs_quota_us"), cgroup_file(pid, "cpu", "cpu.cfs_period_us"),
                cgroup_file(pid, "cpu", "cpu.shares"))
    except AssertionError:
        return ("v2", cgroup_file(pid, "cpu", "cpu.max"), None, cgroup_file(pid, "cpu", "cpu.weight"))


def test_cpu_resources_and_update(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.linux.setdefault("resources", {})["cpu"] = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}
    _, pid = rt.start_detached(b, cid)
    kind, quota, period, shares = _cpu_files(pid)
    if kind == "v1":
        assert read_text(quota).strip() == "50000"
        assert read_text(period).strip() == "100000"
        assert read_text(shares).strip() == "512"
    else:
        assert read_text(quota).split() == ["50000", "100000"]
    assert read_text(cgroup_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus")).strip() == "0"
    rt("update", "--cpu-quota", "20000", cid)
    if kind == "v1":
        assert read_text(quota).strip() == "20000"
    else:
        assert read_text(quota).split()[0] == "20000"


def test_cgroups_path(rt, bundle, cid):
    b = bundle("sleep", "1000")
    parent = "gureum-it-" + cid[-6:]
    b.linux["cgroupsPath"] = f"/{parent}/{cid}"
    b.linux.setdefault("resources", {})["pids"] = {"limit": 77}
    try:
        _, pid = rt.start_detached(b, cid)
        f = cgroup_file(pid, "pids", "pids.max")
        assert f.endswith(f"/{parent}/{cid}/pids.max"), f
        assert read_text(f).strip() == "77"
        rt("delete", "--force", cid)
        wait_for(lambda: not os.path.exists(os.path.dirname(f)), what=f"{os.path.dirname(f)} to be removed")
    finally:
        for d in sorted(cgroup_dirs_named(parent), key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass


@pytest.mark.gureum_only
def test_state_creating_visible_from_hook(rt, bundle, cid, workdir):
    """While createRuntime hooks run, `state` answers with status "creating" (and does not
    block on the create in progress)."""
    b = bundle("true")
    out = os.path.join(workdir, "creating.json")
    b.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "timeout": 20,
        "args": ["sh", "-c", f"cat >/dev/null; {rt.binary} --root {rt.root} state {cid} > {out}"]}]}
    rt("create", "--bundle", b, cid)
    st = json.loads(read_text(out))
    assert st["status"] == "creating" and st["id"] == cid


@pytest.mark.gureum_only
def test_init_runs_from_sealed_copy(rt, bundle, cid):
    """The container's init is not the runtime's file (CVE-2019-5736): its executable is a
    sealed memfd, so a container process cannot write through /proc/PID/exe."""
    b = bundle("true")
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.startswith("/memfd:gureum-runtime"), exe
    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
    try:
        import fcntl
        F_GET_SEALS, F_SEAL_WRITE = 1034, 0x0008
        assert fcntl.fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE
        with pytest.raises(OSError):
            os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
    finally:
        os.close(fd)
    rt("delete", "--force", cid)


def test_inherited_fds_do_not_leak(rt, bundle, workdir):
    """Descriptors the caller leaves open (not close-on-exec) never reach the container, even
    when its seccomp profile refuses close_range; --preserve-fds passes exactly N of them."""
    import subprocess
    secret = os.path.join(workdir, "secret")
    with open(secret, "w") as f:
        f.write("host-secret\n")
    b = bundle("sh", "-c", "cat /proc/self/fd/3 2>/dev/null; cat /proc/self/fd/4 2>/dev/null; true")
    b.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                          "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}
    for preserve, expect in ((0, 0), (1, 1)):
        argv = [rt.binary, "--root", rt.root, "run", "--bundle", os.fspath(b)]
        if preserve:
            argv += ["--preserve-fds", str(preserve)]
        # fds 3 and 4 open (not close-on-exec) in the runtime, as a careless caller leaves them
        p = subprocess.run(["/bin/sh", "-c", 'exec 3<"$1" 4<"$1"; shift; exec "$@"', "sh", secret,
                            *argv, rt.new_id()], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p
        assert p.stdout.count("host-secret") == expect, (preserve, p.stdout)


def test_run_keep_pause_created_kill_all_stopped(rt, bundle, cid):
    """run --keep leaves the stopped container for `state`; a created container can be paused
    and resumed; kill --all still reaches the cgroup when the init is gone."""
    b = bundle("sh", "-c", "exit 3")
    r = rt("run", "--keep", "--bundle", b, cid, check=False)
    assert r.returncode == 3, r
    assert rt.state(cid)["status"] == "stopped"
    rt("kill", "--all", cid, "KILL")
    rt("delete", cid)
    c2 = rt.new_id()
    rt("create", "--bundle", bundle("true"), c2)
    rt("pause", c2)
    assert rt.state(c2)["status"] == "paused"
    rt("resume", c2)
    assert rt.state(c2)["status"] == "created"
    rt("delete", "--force", c2)


@pytest.mark.gureum_only
def test_delete_force_of_half_made_state_dir(rt, cid):
    """A create killed in its first instant leaves ROOT/ID without state.json: delete --force
    removes it so the id can be used again."""
    d = os.path.join(rt.root, cid)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write("{}")
    rt("delete", "--force", cid)
    assert not os.path.exists(d)
