"""Helpers shared by the instance storage tests (test_overlay_layers.py, test_volumes.py,
test_snapshots.py): hand-made layered images in a daemon's store, and API/CLI shortcuts."""
import hashlib
import json
import os
import shutil
import subprocess

import daemon
from daemon import TIMEOUT

GUREUM = os.environ.get("GUREUM_CLI", os.path.join(daemon.BUILD, "src", "cli", "gureum"))
BUSYBOX_BIN = os.environ.get("GUREUM_BUSYBOX", "/bin/busybox")
BUSYBOX = {"type": "image", "alias": "busybox"}
SLEEPER = ["sh", "-c", "exec sleep 100000"]


def whiteout(path):
    """An overlayfs whiteout (character device 0/0) at path."""
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def make_layer(state_dir, build):
    """A layer directory in STATE/images/layers/<id>/: build(dir) fills it; the id is a hash of
    the test's content description (what a real diff_id would be does not matter here)."""
    layers = os.path.join(state_dir, "images", "layers")
    os.makedirs(layers, exist_ok=True)
    tmp = os.path.join(layers, ".tmp-build")
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    desc = build(tmp)
    hexid = hashlib.sha256(repr(desc).encode()).hexdigest()
    final = os.path.join(layers, hexid)
    if os.path.exists(final):
        shutil.rmtree(tmp)
    else:
        os.rename(tmp, final)
    return hexid


def busybox_layer(state_dir, extra_etc=True):
    def build(d):
        for sub in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
            os.mkdir(os.path.join(d, sub))
        os.chmod(os.path.join(d, "tmp"), 0o1777)
        shutil.copy2(BUSYBOX_BIN, os.path.join(d, "bin", "busybox"))
        out = subprocess.run([BUSYBOX_BIN, "--list"], capture_output=True, text=True, check=True).stdout
        for applet in out.split():
            if applet != "busybox":
                os.symlink("busybox", os.path.join(d, "bin", applet))
        if extra_etc:
            with open(os.path.join(d, "etc", "passwd"), "w") as f:
                f.write("root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n")
            with open(os.path.join(d, "etc", "group"), "w") as f:
                f.write("root:x:0:\napp:x:4321:\nstaff:x:50:\n")
        return ("busybox", os.path.getsize(BUSYBOX_BIN), extra_etc)
    return make_layer(state_dir, build)


def make_image(state_dir, layers, config=None):
    """STATE/images/<fingerprint>/image.json for the given layer ids (bottom..top); returns the
    fingerprint."""
    fp = hashlib.sha256(("image:" + ":".join(layers) + json.dumps(config, sort_keys=True)).encode()).hexdigest()
    d = os.path.join(state_dir, "images", fp)
    os.makedirs(d, exist_ok=True)
    meta = {"fingerprint": fp, "aliases": [], "architecture": "x86_64", "size": 0,
            "created_at": "2024-01-01T00:00:00Z", "source": "test",
            "layers": ["sha256:" + x for x in layers], "config": config or {}}
    with open(os.path.join(d, "image.json"), "w") as f:
        json.dump(meta, f)
    return fp


def run_op(d, method, path, body=None, expect_status="Success"):
    st, _, env = d.request(method, path, body=body)
    assert st == 202, f"{method} {path}: HTTP {st}: {env}"
    op = d.wait_operation(env["operation"])
    if expect_status:
        assert op["status"] == expect_status, f"{method} {path}: {op}"
    return op


def error(d, method, path, body=None, code=400, contains=None):
    st, _, env = d.request(method, path, body=json.dumps(body).encode() if body is not None else None)
    assert st == code, f"{method} {path}: HTTP {st}, expected {code}: {env}"
    assert env["type"] == "error" and env["error_code"] == code
    if contains:
        assert contains in env["error"], env["error"]
    return env["error"]


def op_error(d, method, path, body=None, contains=None):
    """An operation that fails: its error text."""
    op = run_op(d, method, path, body, expect_status=None)
    assert op["status"] == "Failure", op
    if contains:
        assert contains in op["err"], op["err"]
    return op["err"]


def create(d, name, source=None, start=True, command=SLEEPER, config=None):
    body = {"name": name, "source": source or BUSYBOX, "start": start, "config": config or {}}
    if command:
        body["command"] = command
    return run_op(d, "POST", "/1.0/instances", body)


def action(d, name, act, **kw):
    return run_op(d, "PUT", f"/1.0/instances/{name}/state", dict(action=act, **kw))


def sh(d, name, script, expect=0):
    op = run_op(d, "POST", f"/1.0/instances/{name}/exec", {"command": ["sh", "-c", script]})
    md = op["metadata"]
    if expect is not None:
        assert md["return"] == expect, f"{script}: {md}"
    return md["stdout"]


class Cli:
    def __init__(self, d):
        self.base = [GUREUM, "--socket", d.socket_path]

    def run(self, *args, expect=0, timeout=TIMEOUT):
        r = subprocess.run(self.base + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
        if expect is not None:
            assert r.returncode == expect, f"gureum {' '.join(map(str, args))}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
        return r
