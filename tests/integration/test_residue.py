"""A failing create leaves nothing behind: no state, no process, no cgroup, no mount."""
import json
import os

import pytest

from helpers import assert_no_residue


def test_bad_memory_limit_type(rt, bundle, cid):
    b = bundle("true")
    b.linux.setdefault("resources", {})["memory"] = {"limit": "1G"}
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert "linux.resources.memory.limit" in r.output, r
    assert_no_residue(rt, cid, b.path)


def test_invalid_json(rt, bundle, cid):
    b = bundle("true")
    b.save()
    with open(os.path.join(b.path, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "process": {"args": ["true"], ')  # truncated
    r = rt("create", "--bundle", b.path, cid, check=False)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def test_nonexistent_binary(rt, bundle, cid):
    b = bundle("/no/such/binary", "arg")
    r = rt("create", "--bundle", b, cid, check=False)
    if r.returncode == 0:
        # allowed by the spec to surface at start instead
        r2 = rt("start", cid, check=False)
        assert r2.returncode != 0, "start of a nonexistent binary must fail"
        rt("delete", "--force", cid, check=False)
    else:
        assert "/no/such/binary" in r.output, r
    assert_no_residue(rt, cid, b.path)


def test_nonexistent_binary_run(rt, bundle, cid):
    b = bundle("/no/such/binary")
    r = rt.run(b, cid)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def test_missing_mount_source(rt, bundle, cid):
    """Fails late, after namespaces and cgroups exist: all of it must be undone."""
    b = bundle("true")
    b.linux.setdefault("resources", {})["pids"] = {"limit": 50}
    b.bind("/no/such/source/dir", "/mnt")
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def test_missing_rootfs(rt, bundle, cid):
    b = bundle("true")
    b.config["root"]["path"] = "no-such-rootfs"
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert_no_residue(rt, cid, b.path)


def test_duplicate_id_fails_and_keeps_first(rt, bundle, cid):
    b = bundle("sleep", "1000")
    rt("create", "--bundle", b, cid)
    pid = rt.state(cid)["pid"]
    b2 = bundle("sleep", "1000")
    r = rt("create", "--bundle", b2, cid, check=False)
    assert r.returncode != 0, r
    st = rt.state(cid)
    assert st["pid"] == pid and st["status"] == "created"


@pytest.mark.gureum_only
@pytest.mark.parametrize("version", ["2.0.0", "not-a-version"])
def test_bad_oci_version(rt, bundle, cid, version):
    b = bundle("true")
    b.config["ociVersion"] = version
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    assert "ociVersion" in r.output, r
    assert_no_residue(rt, cid, b.path)


def test_delete_leaves_no_residue(rt, bundle, cid):
    b = bundle("sleep", "1000")
    b.linux.setdefault("resources", {})["pids"] = {"limit": 50}
    rt.start_detached(b, cid)
    rt("kill", cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt("delete", cid)
    assert_no_residue(rt, cid, b.path)


@pytest.mark.gureum_only
def test_unknown_namespace_type_message(rt, bundle, cid):
    b = bundle("true")
    b.linux["namespaces"].append({"type": "bogus"})
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0
    assert "bogus" in r.output and "linux.namespaces" in r.output, r
    assert_no_residue(rt, cid, b.path)


@pytest.mark.gureum_only
@pytest.mark.parametrize("edit,words", [
    (lambda c: c["process"]["capabilities"]["bounding"].append("CAP_BOGUS"), ["CAP_BOGUS", "capabilities"]),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}), ["RLIMIT_BOGUS"]),
    (lambda c: c["process"].pop("args"), ["process.args"]),
    (lambda c: c["mounts"].append({"destination": "relative/path", "type": "tmpfs", "source": "tmpfs"}),
     ["relative/path"]),
], ids=["capability", "rlimit", "args", "mount-destination"])
def test_config_errors_name_field_and_value(rt, bundle, cid, edit, words):
    """Errors say which field and which value are wrong (docs: messages with context)."""
    b = bundle("true")
    edit(b.config)
    r = rt("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0, r
    for w in words:
        assert w in r.stderr, (w, r)
    assert_no_residue(rt, cid, b.path)
