"""The image store through the real daemon and CLI: every import format built here from busybox
(OCI layout directory and tarball with three layers, gzip/zstd/plain, whiteouts of both kinds; a
docker-archive; rootfs tarballs gz/xz/zstd; a docker-archive from `podman save` when podman is
present), a launch from each with the whiteouts honoured, digest mismatches storing nothing, the
exporter read back by `podman load`, deletes refused while an instance uses the image, aliases
that move, and the debian/12 build (slow; skipped with the reason when the mirror is unreachable).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_images.py
"""
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import urllib.parse
import urllib.request

import pytest

from daemon import Gureumd, gureumd  # noqa: F401 (fixture)
from storage import BUSYBOX_BIN, Cli, error, op_error, run_op, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="images and containers need root")

PREFIX = f"im{os.getpid() % 100000}-"
PODMAN = shutil.which("podman")
ZSTD = shutil.which("zstd")
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def n(short):
    return PREFIX + short


# --- fixtures: layer tars made with tarfile ---------------------------------------------------

def _add(tf, name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=""):
    ti = tarfile.TarInfo(name)
    ti.mode, ti.type, ti.linkname, ti.mtime = mode, kind, link, 1700000000
    if data is not None:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def _dir(tf, name, mode=0o755):
    _add(tf, name, mode=mode, kind=tarfile.DIRTYPE)


def layer_base():
    """busybox with its applets, /data/{a,b,c}, /opq/{old1,old2}."""
    buf = io.BytesIO()
    applets = subprocess.run([BUSYBOX_BIN, "--list"], capture_output=True, text=True, check=True).stdout.split()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("bin", "etc", "root", "proc", "sys", "dev", "data", "opq"):
            _dir(tf, d)
        _dir(tf, "tmp", 0o1777)
        with open(BUSYBOX_BIN, "rb") as f:
            _add(tf, "bin/busybox", f.read(), 0o755)
        for a in applets:
            if a != "busybox":
                _add(tf, f"bin/{a}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tf, "etc/group", b"root:x:0:\n")
        for name in ("a", "b", "c"):
            _add(tf, f"data/{name}", name.upper().encode() + b"1")
        _add(tf, "opq/old1", b"old")
        _add(tf, "opq/old2", b"old")
    return buf.getvalue()


def layer_whiteouts():
    """Deletes /data/a (.wh.a), replaces /data/b, makes /opq opaque with one new file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _dir(tf, "data")
        _add(tf, "data/.wh.a", b"")
        _add(tf, "data/b", b"B2")
        _dir(tf, "opq")
        _add(tf, "opq/.wh..wh..opq", b"")
        _add(tf, "opq/new", b"new")
    return buf.getvalue()


def layer_top():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _dir(tf, "etc")
        _add(tf, "etc/top", b"top layer\n")
    return buf.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def compress(data, how):
    if how == "gzip":
        return gzip.compress(data)
    if how == "xz":
        return lzma.compress(data)
    if how == "zstd":
        return subprocess.run([ZSTD, "-q", "-c"], input=data, capture_output=True, check=True).stdout
    return data


LAYER_TYPES = {"none": "application/vnd.oci.image.layer.v1.tar",
               "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}


def layers3():
    return [layer_base(), layer_whiteouts(), layer_top()]


def image_config(diff_ids, arch="amd64"):
    return {"architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin", "FROM_IMAGE=oci"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]}}


def write_blob(root, data):
    d = sha(data)
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return d


def oci_layout(root, compressions=("gzip", "none", "zstd"), extra_index=None, tamper=None):
    """An OCI image layout in root; returns the manifest digest (the fingerprint)."""
    os.makedirs(root)
    tars = layers3()
    descs = []
    for tar, how in zip(tars, compressions):
        if how == "zstd" and not ZSTD:
            how = "gzip"
        blob = compress(tar, how)
        descs.append({"mediaType": LAYER_TYPES[how], "digest": "sha256:" + write_blob(root, blob), "size": len(blob)})
    cfg = json.dumps(image_config([sha(t) for t in tars])).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": "sha256:" + write_blob(root, cfg), "size": len(cfg)},
                           "layers": descs}).encode()
    md = write_blob(root, manifest)
    manifests = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md,
                  "size": len(manifest), "platform": {"os": "linux", "architecture": "amd64"}}]
    manifests += extra_index or []
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": manifests}, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    if tamper:
        tamper(root, descs)
    return md


def tar_dir(src, dst):
    with tarfile.open(dst, "w") as tf:
        for name in sorted(os.listdir(src)):
            tf.add(os.path.join(src, name), arcname=name)


def docker_archive(path, tamper_diff=False):
    tars = layers3()
    diff_ids = [sha(t) for t in tars]
    if tamper_diff:
        diff_ids[1] = sha(b"not this layer")
    cfg = json.dumps(image_config(diff_ids)).encode()
    cfg_name = sha(cfg) + ".json"
    with tarfile.open(path, "w") as tf:
        for i, t in enumerate(tars):
            _add(tf, f"{sha(t)}/layer.tar", t)
        _add(tf, cfg_name, cfg)
        _add(tf, "manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": ["localhost/test:latest"],
                                               "Layers": [f"{sha(t)}/layer.tar" for t in tars]}]).encode())
    return sha(cfg)


def flat_rootfs():
    """One tar holding what the three layers make together (no whiteouts)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(layer_base())) as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in src.getmembers():
            if m.name in ("data/a", "opq/old1", "opq/old2"):
                continue
            tf.addfile(m, src.extractfile(m) if m.isfile() else None)
        _add(tf, "data/b", b"B2")
        _add(tf, "opq/new", b"new")
        _add(tf, "etc/top", b"top layer\n")
    return buf.getvalue()


# --- helpers ----------------------------------------------------------------------------------

def images(d):
    st, _, env = d.request("GET", "/1.0/images?recursion=1")
    assert st == 200, env
    return env["metadata"]


def import_file(d, path, aliases=(), expect="Success"):
    return run_op(d, "POST", "/1.0/images", {"source": {"type": "file", "path": path}, "aliases": list(aliases)},
                  expect_status=expect)


def launch_and_check_layers(d, source, name):
    run_op(d, "POST", "/1.0/instances", {"name": name, "source": source, "start": True,
                                        "command": ["sh", "-c", "exec sleep 100000"]})
    try:
        assert sh(d, name, "ls /data | tr '\\n' ' '") == "b c "       # .wh.a deleted a
        assert sh(d, name, "cat /data/b /data/c") == "B2C1"
        assert sh(d, name, "ls /opq") == "new\n"                      # opaque: only the upper layer
        assert sh(d, name, "cat /etc/top") == "top layer\n"
    finally:
        run_op(d, "DELETE", f"/1.0/instances/{name}?force=1")


def layers_on_disk(d):
    return sorted(os.listdir(os.path.join(d.state_dir, "images", "layers")))


def tmp_empty(d):
    return os.listdir(os.path.join(d.state_dir, "images", "tmp")) == []


# --- tests ------------------------------------------------------------------------------------

def test_busybox_is_built_at_start(gureumd):
    d = gureumd
    imgs = images(d)
    bb = [i for i in imgs if {"name": "busybox"} in i["aliases"]]
    assert len(bb) == 1 and len(bb[0]["layers"]) == 1 and bb[0]["architecture"]
    fp = bb[0]["fingerprint"]
    assert os.path.exists(os.path.join(d.state_dir, "images", fp, "image.json"))
    # launch busybox keeps working out of the box; the instance pins the fingerprint
    run_op(d, "POST", "/1.0/instances", {"name": n("bb"), "source": {"type": "image", "alias": "busybox"}})
    st, _, env = d.request("GET", f"/1.0/instances/{n('bb')}")
    assert env["metadata"]["image"] == "busybox" and env["metadata"]["image_fingerprint"] == fp
    # a rebuild from the same busybox-static is the same image
    op = run_op(d, "POST", "/1.0/images", {"source": {"type": "build", "name": "busybox"}})
    assert op["metadata"]["fingerprint"] == fp and op["metadata"]["already_present"] is True
    run_op(d, "DELETE", f"/1.0/instances/{n('bb')}?force=1")


def test_oci_layout_dir_and_tarball(gureumd, tmp_path):
    d = gureumd
    root = str(tmp_path / "oci")
    fp = oci_layout(root)
    op = import_file(d, root, ["oci/dir"])
    assert op["metadata"] == {"fingerprint": fp, "already_present": False, "format": "oci-layout"}
    img = d.request("GET", "/1.0/images/oci/dir")[2]["metadata"]
    assert img["fingerprint"] == fp and len(img["layers"]) == 3 and img["config"]["Env"][1] == "FROM_IMAGE=oci"
    launch_and_check_layers(d, {"type": "image", "alias": "oci/dir"}, n("oci"))
    # the same layout as a tarball: the same image, already present; the alias is added
    tarball = str(tmp_path / "oci.tar")
    tar_dir(root, tarball)
    op = import_file(d, tarball, ["oci/tar"])
    assert op["metadata"]["already_present"] is True and op["metadata"]["format"] == "oci-archive"
    img = d.request("GET", f"/1.0/images/{fp[:12]}")[2]["metadata"]
    assert sorted(a["name"] for a in img["aliases"]) == ["oci/dir", "oci/tar"]
    assert tmp_empty(d)


def test_oci_index_picks_this_platform(gureumd, tmp_path):
    d = gureumd
    other = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64,
              "size": 10, "platform": {"os": "linux", "architecture": "arm64"}}]
    fp = oci_layout(str(tmp_path / "multi"), extra_index=other)
    assert import_file(d, str(tmp_path / "multi"))["metadata"]["fingerprint"] == fp
    # several images, none for this host: refused, naming what there is
    arm = [dict(other[0]), dict(other[0], platform={"os": "linux", "architecture": "s390x"})]
    root = str(tmp_path / "none")
    oci_layout(root, extra_index=arm)
    with open(os.path.join(root, "index.json")) as f:
        idx = json.load(f)
    idx["manifests"] = arm
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(idx, f)
    err = import_file(d, root, expect="Failure")["err"]
    assert "none for linux/amd64" in err and "linux/arm64" in err and "linux/s390x" in err


def test_digest_mismatch_stores_nothing(gureumd, tmp_path):
    d = gureumd
    before_imgs, before_layers = len(images(d)), layers_on_disk(d)

    def flip_layer(root, descs):      # the top layer's bytes change; its descriptor does not
        p = os.path.join(root, "blobs", "sha256", descs[2]["digest"][7:])
        data = bytearray(open(p, "rb").read())
        data[-1] ^= 1
        open(p, "wb").write(bytes(data))

    def bad_size(root, descs):        # a descriptor whose size lies
        with open(os.path.join(root, "index.json")) as f:
            idx = json.load(f)
        idx["manifests"][0]["size"] += 1
        with open(os.path.join(root, "index.json"), "w") as f:
            json.dump(idx, f)

    for name, tamper, msg in (("flip", flip_layer, "mismatch"), ("size", bad_size, "bytes where its descriptor")):
        root = str(tmp_path / name)
        oci_layout(root, compressions=("gzip", "none", "none"), tamper=tamper)
        err = import_file(d, root, ["bad/" + name], expect="Failure")["err"]
        assert msg in err and "nothing stored" in err, err
    # a docker-archive whose config names another diff_id
    bad = str(tmp_path / "bad-docker.tar")
    docker_archive(bad, tamper_diff=True)
    err = import_file(d, bad, expect="Failure")["err"]
    assert "diff" in err.lower() or "mismatch" in err, err
    assert len(images(d)) == before_imgs and layers_on_disk(d) == before_layers and tmp_empty(d)
    error(d, "GET", "/1.0/images/bad/flip", code=404)


def test_docker_archive(gureumd, tmp_path):
    d = gureumd
    path = str(tmp_path / "docker.tar")
    fp = docker_archive(path)
    op = import_file(d, path, ["docker/x"])
    assert op["metadata"]["fingerprint"] == fp and op["metadata"]["format"] == "docker-archive"
    launch_and_check_layers(d, {"type": "image", "alias": "docker/x"}, n("dock"))


@pytest.mark.parametrize("how", ["gzip", "xz", "zstd", "none"])
def test_rootfs_tarballs(gureumd, tmp_path, how):
    d = gureumd
    if how == "zstd" and not ZSTD:
        pytest.skip("zstd is not installed (apt-get install zstd)")
    data = compress(flat_rootfs(), how)
    path = str(tmp_path / f"rootfs.tar.{how}")
    open(path, "wb").write(data)
    op = import_file(d, path)                       # no alias: reachable by fingerprint
    fp = op["metadata"]["fingerprint"]
    assert fp == sha(data) and op["metadata"]["format"] == "rootfs"
    launch_and_check_layers(d, {"type": "image", "fingerprint": fp[:16]}, n("rf-" + how))


def test_cli_import_list_info_alias_delete(gureumd, tmp_path):
    d = gureumd
    cli = Cli(d)
    path = str(tmp_path / "r.tar.gz")
    open(path, "wb").write(gzip.compress(flat_rootfs()))
    os.chdir(tmp_path)
    r = cli.run("image", "import", "r.tar.gz", "--alias", "cli/one")   # a relative path: sent absolute
    fp = r.stdout.strip()
    assert len(fp) == 64 and "Imported rootfs image" in r.stderr
    assert "cli/one" in cli.run("image", "list").stdout
    csv = cli.run("image", "list", "--format", "csv").stdout
    assert f"cli/one,{fp}," in csv
    info = cli.run("image", "info", "cli/one").stdout
    assert f"Fingerprint: {fp}" in info and "Source: rootfs " + path in info
    # the instance pins the fingerprint: the alias moves, the instance keeps its image
    cli.run("launch", "cli/one", n("pin"), "--", "sh", "-c", "exec sleep 100000")
    fp2 = import_file(d, str(tmp_path / "r.tar.gz"))["metadata"]["fingerprint"]
    assert fp2 == fp
    oci = str(tmp_path / "oci")
    fp_oci = oci_layout(oci)
    import_file(d, oci)
    r = cli.run("image", "alias", "add", "cli/one", fp_oci[:12])
    assert "moved from" in r.stderr
    inst = d.request("GET", f"/1.0/instances/{n('pin')}")[2]["metadata"]
    assert inst["image_fingerprint"] == fp
    # delete refused while used, naming the instance
    r = cli.run("image", "delete", fp[:12], expect=1)
    assert n("pin") in r.stderr and "used by" in r.stderr
    cli.run("delete", "--force", n("pin"))
    cli.run("image", "delete", fp[:12])
    error(d, "GET", f"/1.0/images/{fp}", code=404)
    assert not os.path.exists(os.path.join(d.state_dir, "images", fp))
    cli.run("image", "alias", "delete", "cli/one")
    error(d, "GET", "/1.0/images/cli/one", code=404)
    # layers only the deleted image used are gone; shared ones stay
    for lid in layers_on_disk(d):
        assert any("sha256:" + lid in i["layers"] for i in images(d)), lid


def test_alias_rules(gureumd):
    d = gureumd
    fp = images(d)[0]["fingerprint"]
    for bad in ("", "a/b/c", "/x", "x/", "-x", "aliases", "x/export", "a b", "x" * 65, "f" * 64, "a/../b"):
        error(d, "POST", "/1.0/images/aliases", {"name": bad, "target": fp}, 400)
    error(d, "POST", "/1.0/images/aliases", {"name": "ok", "target": "nothing-such"}, 404)
    error(d, "POST", "/1.0/images", {"source": {"type": "file", "path": "relative"}}, 400)
    error(d, "POST", "/1.0/images", {"source": {"type": "upload"}}, 400)
    error(d, "POST", "/1.0/images", {"source": {"type": "build", "name": "gentoo"}}, 400)
    assert "No such file" in op_error(d, "POST", "/1.0/images", {"source": {"type": "file", "path": "/nonexistent"}})


@pytest.mark.skipif(not PODMAN, reason="podman is not installed (apt-get install podman)")
def test_export_podman_load_and_podman_save_import(gureumd, tmp_path):
    d = gureumd
    root = str(tmp_path / "oci")
    oci_layout(root)
    import_file(d, root, ["exp/me"])
    out = str(tmp_path / "exported.tar")
    Cli(d).run("image", "export", "exp/me", out)
    base = tempfile.mkdtemp(prefix="gpm", dir="/tmp")     # podman wants a short runroot
    pm = [PODMAN, "--root", base + "/root", "--runroot", base + "/run", "--tmpdir", base + "/tmp",
          "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    runc = shutil.which("runc")

    def podman(*args, check=True):
        p = subprocess.run(pm + list(args), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert not check or p.returncode == 0, f"podman {args}: {p.stdout}\n{p.stderr}"
        return p
    try:
        assert "exp/me" in podman("load", "-i", out).stdout
        assert podman("image", "inspect", "localhost/exp/me:latest").returncode == 0
        if runc:  # crun refuses hybrid cgroups (ENVIRONMENT.md)
            r = podman("--runtime", runc, "run", "--rm", "--network", "none", *ULIMITS, "localhost/exp/me:latest",
                       "sh", "-c", "ls /data | tr '\\n' ' '; cat /etc/top; ls /opq")
            assert r.stdout == "b c top layer\nnew\n", r.stdout
        # and back: podman save writes a docker-archive, which imports and launches
        saved = str(tmp_path / "saved.tar")
        podman("save", "-o", saved, "localhost/exp/me:latest")
        op = import_file(d, saved, ["from/podman"])
        assert op["metadata"]["format"] == "docker-archive"
        launch_and_check_layers(d, {"type": "image", "alias": "from/podman"}, n("psave"))
    finally:
        podman("rmi", "--all", "--force", check=False)
        subprocess.run(["umount", "-R", base], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def mirror_reachable(url):
    try:
        urllib.request.urlopen(url.rstrip("/") + "/dists/bookworm/Release", timeout=10).close()
        return None
    except Exception as e:  # noqa: BLE001 (any failure means: skip)
        return f"{e}"


@pytest.fixture(scope="module")
def debian12():
    """A gureumd (its VMs with the static gureum-init) that built debian/12 with debootstrap; built
    once for the tests below."""
    if not shutil.which("debootstrap"):
        pytest.skip("debootstrap is not installed (apt-get install debootstrap)")
    mirror = os.environ.get("GUREUM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    reason = mirror_reachable(mirror)
    if reason:
        pytest.skip(f"the Debian mirror {mirror} is unreachable: {reason}")
    import test_vm
    # gureumd lives in a network namespace of its own, with no way out: debootstrap reaches the
    # mirror through an HTTP proxy that this test serves inside that namespace and that connects
    # out from the machine's own (gureumd hands http_proxy to debootstrap).
    d = Gureumd(env={"GUREUM_INIT": test_vm.INIT} if test_vm.INIT else None)
    proxy = HttpProxy(d.ensure_netns())
    d.env["http_proxy"] = f"http://127.0.0.1:{proxy.port}"
    try:
        d.start()
        r = Cli(d).run("image", "build", "debian/12", timeout=1800)
        assert "Built debian/12" in r.stderr, r.stderr
        yield d
    finally:
        try:
            d.cleanup()
        finally:
            proxy.close()


@pytest.mark.slow
def test_debian12_container(debian12):
    cli = Cli(debian12)
    cli.run("launch", "debian/12", n("d1"), "--", "sh", "-c", "exec sleep 100000")
    try:
        out = cli.run("exec", n("d1"), "--", "cat", "/etc/debian_version").stdout
        assert out.startswith("12."), out
    finally:
        cli.run("delete", "--force", n("d1"))


@pytest.mark.slow
def test_debian12_vm(debian12):
    """The issue's check: `gureum launch debian/12 v1 --vm && gureum exec v1 -- uname -a`. The image
    is debootstrap's minbase: no init, so gureum-init stays PID 1 with the agent."""
    import test_vm
    for mark in test_vm.pytestmark:
        if mark.name == "skipif" and mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    cli = Cli(debian12)
    name = n("v1")
    try:
        assert cli.run("launch", "debian/12", name, "--vm").stdout.strip() == name
        out = cli.run("exec", name, "--", "uname", "-a", timeout=test_vm.BOOT_TIMEOUT).stdout
        assert out.startswith(f"Linux {name} ") and "cloud-amd64" in out, out
        assert cli.run("exec", name, "--", "cat", "/etc/debian_version").stdout.startswith("12.")
        assert cli.run("exec", name, "--", "sh", "-c", "exit 3", expect=3).returncode == 3
        log = test_vm.console_log(debian12, name)
        assert "the image has no /sbin/init: gureum-init stays PID 1" in log, log
        assert "VIRTUAL-MACHINE" in cli.run("list").stdout.upper()
        cli.run("stop", name)
        assert "STOPPED" in cli.run("info", name).stdout.upper()
    finally:
        cli.run("delete", "--force", name, expect=None)


class HttpProxy:
    """A plain-HTTP forward proxy: listens on 127.0.0.1 inside a namespace, connects out from
    this process's own. One request per connection (it asks for Connection: close)."""

    def __init__(self, ns):
        self.sock = ns.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def handle(self, c):
        with c:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = c.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, url, version = lines[0].split(b" ", 2)
            u = urllib.parse.urlsplit(url.decode())
            if u.scheme != "http" or not u.hostname:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return
            path = (u.path or "/") + (("?" + u.query) if u.query else "")
            headers = [h for h in lines[1:] if not h.lower().startswith((b"proxy-connection:", b"connection:"))]
            req = b"\r\n".join([b" ".join([method, path.encode(), version]), *headers, b"Connection: close"])
            try:
                up = socket.create_connection((u.hostname, u.port or 80), timeout=60)
            except OSError:
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
                return
            with up:
                up.sendall(req + b"\r\n\r\n" + rest)
                while True:
                    data = up.recv(65536)
                    if not data:
                        return
                    c.sendall(data)

    def close(self):
        self.sock.close()
