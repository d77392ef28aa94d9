"""Hooks: all six kinds run in lifecycle order with the state on stdin; timeouts and failures
make create fail without residue."""
import json
import os
import time

import pytest

from helpers import IS_RUNC, assert_no_residue, processes_with_cmdline, read_text

ORDER = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def _host_hook(hookdir, kind, extra=""):
    # host /bin/sh; the state JSON arrives on stdin
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f"cat > {hookdir}/{kind}.json; {extra} echo {kind} >> {hookdir}/order"]}


def _all_hooks_bundle(bundle):
    b = bundle("sh", "-c", "echo ran > /hooks/process; exit 0")
    hookdir = b.shared_dir("/hooks")
    hooks = {k: [_host_hook(hookdir, k)] for k in ORDER}
    # startContainer runs inside the container after pivot_root: its path resolves there
    # (busybox sh of the rootfs) and it writes to the bind-mounted directory.
    hooks["startContainer"] = [{"path": "/bin/sh", "args": [
        "sh", "-c", "cat > /hooks/startContainer.json; echo startContainer >> /hooks/order"]}]
    # env and args reach the hook
    hooks["prestart"][0]["env"] = ["HOOKVAR=hv42"]
    hooks["prestart"][0]["args"][2] = f"echo $HOOKVAR > {hookdir}/env; " + hooks["prestart"][0]["args"][2]
    b.config["hooks"] = hooks
    return b, hookdir


def test_hooks_state_on_stdin(rt, bundle, cid):
    """Every hook kind runs once and receives the container state on stdin."""
    b, hookdir = _all_hooks_bundle(bundle)
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    assert read_text(f"{hookdir}/order").split()[:3] == ORDER[:3], \
        "create runs prestart, createRuntime, createContainer in this order"
    rt("start", cid)
    rt.wait_status(cid, "stopped")
    assert read_text(f"{hookdir}/process").strip() == "ran"
    rt("delete", cid)
    assert sorted(read_text(f"{hookdir}/order").split()) == sorted(ORDER)
    assert read_text(f"{hookdir}/order").split()[-1] == "poststop"
    assert read_text(f"{hookdir}/env").strip() == "hv42"

    # prestart: runc says "creating"; crun, gureum and the runtime-tools suite say "created".
    # prestart: runc says "creating"; crun and runtime-tools' hooks_stdin validation say "created"
    expect_status = {"prestart": ("creating", "created"), "createRuntime": ("creating",),
                     "createContainer": ("creating",), "startContainer": ("created",),
                     "poststart": ("running",), "poststop": ("stopped",)}
    for kind in ORDER:
        st = json.loads(read_text(f"{hookdir}/{kind}.json"))
        assert st["id"] == cid, (kind, st)
        assert st["ociVersion"], (kind, st)
        assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path), (kind, st)
        if kind != "poststart" or not IS_RUNC:  # runc 1.1.5 runs poststart at create: "created"
            assert st["status"] in expect_status[kind], (kind, st)
        if kind in ("prestart", "createRuntime", "poststart"):
            assert st["pid"] == pid, (kind, st)


@pytest.mark.not_runc("runc 1.1.5 runs poststart hooks during create, before startContainer")
def test_hooks_run_in_lifecycle_order(rt, bundle, cid):
    b, hookdir = _all_hooks_bundle(bundle)
    rt("create", "--bundle", b, cid)
    assert read_text(f"{hookdir}/order").split() == ORDER[:3], "create runs exactly the create hooks"
    rt("start", cid)
    # poststart must have completed before start returns
    assert read_text(f"{hookdir}/order").split() == ORDER[:5]
    rt.wait_status(cid, "stopped")
    assert read_text(f"{hookdir}/order").split() == ORDER[:5], "no hook runs when the process exits"
    rt("delete", cid)
    assert read_text(f"{hookdir}/order").split() == ORDER


@pytest.mark.gureum_only
def test_container_hooks_pid_is_host_pid(rt, bundle, cid):
    """The state's pid is the init's pid as seen by the host, also for the createContainer and
    startContainer hooks that run in the container's namespaces (runc 1.1.5 reports 1)."""
    b = bundle("true")
    hookdir = b.shared_dir("/hooks")
    b.config["hooks"] = {
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {hookdir}/createContainer.json"]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /hooks/startContainer.json"]}]}
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    rt("start", cid)
    assert json.loads(read_text(f"{hookdir}/createContainer.json"))["pid"] == pid
    assert json.loads(read_text(f"{hookdir}/startContainer.json"))["pid"] == pid


def test_multiple_hooks_of_one_kind_in_order(rt, bundle, cid):
    b = bundle("true")
    hookdir = b.shared_dir("/hooks")
    b.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat >/dev/null; echo {i} >> {hookdir}/order"]}
        for i in range(4)]}
    rt("create", "--bundle", b, cid)
    assert read_text(f"{hookdir}/order").split() == ["0", "1", "2", "3"]


def test_hook_timeout_fails_create_without_residue(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "4321"], "timeout": 1}]}
    t0 = time.monotonic()
    r = rt("create", "--bundle", b, cid, check=False)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, r
    assert elapsed < 30, f"create took {elapsed:.1f}s despite a 1s hook timeout"
    assert_no_residue(rt, cid, b.path)
    assert not processes_with_cmdline("4321"), "the timed-out hook was not killed"


def test_failing_prestart_fails_create_without_residue(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null; exit 3"]}]}
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def test_failing_create_runtime_hook_fails_create_without_residue(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.config["hooks"] = {"createRuntime": [{"path": "/nonexistent/hook"}]}
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def _failing_poststop(rt, bundle, cid):
    b = bundle("true")
    hookdir = b.shared_dir("/hooks")
    b.config["hooks"] = {"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; exit 1"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > /dev/null; echo second >> {hookdir}/order"]}]}
    rt.start_detached(b, cid)
    rt.wait_status(cid, "stopped")
    rt("delete", cid)
    assert rt("state", cid, check=False).returncode != 0
    return b, hookdir


def test_failing_poststop_does_not_fail_delete(rt, bundle, cid):
    """Spec: a poststop hook error is logged as a warning and the lifecycle continues."""
    b, _ = _failing_poststop(rt, bundle, cid)
    assert_no_residue(rt, cid, b.path)


@pytest.mark.not_runc("runc 1.1.5 stops running poststop hooks at the first failing one")
def test_failing_poststop_runs_remaining_hooks(rt, bundle, cid):
    """Spec: after a failing poststop hook the remaining hooks still run."""
    _, hookdir = _failing_poststop(rt, bundle, cid)
    assert read_text(f"{hookdir}/order").split() == ["second"]
