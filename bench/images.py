#!/usr/bin/env python3
"""bench/images.py: image import throughput and launch time from a layered image, in one run.

  import throughput  a ~200 MB docker-archive of 4 layers (files copied from /usr, some
                     whiteouts in the upper layers), built here with tarfile + json, imported by
                     `gureum image import` (or POST /1.0/images when the CLI has no such command)
                     into a fresh gureumd, against `podman load` into a throw-away vfs store
                     (--root/--runroot in a temp dir); same archive, same page cache, MB/s of the
                     archive's size and the ratio
  launch time        POST /1.0/instances {"start": true} until the container runs, from a 5-layer
                     image against a flattened one with the same files (both built here from
                     busybox-static plus files from /usr), alternating

Not a test: nothing here passes or fails. Run as root after `make build`:
    /usr/bin/python3 bench/images.py [--size-mb 200] [--runs 3] [--launches 30] [--no-podman] [--keep]
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import daemon  # noqa: E402  (the test harness: starts gureumd, HTTP over its socket)
from daemon import Gureumd  # noqa: E402

GUREUM = os.environ.get("GUREUM_CLI", os.path.join(daemon.BUILD, "src", "cli", "gureum"))
BUSYBOX = "/bin/busybox"


# --- archives ---------------------------------------------------------------------------------

def usr_files(budget, skip=()):
    """Regular files (path, size) from /usr, in a stable order, until `budget` bytes."""
    out, total = [], 0
    for root, dirs, files in os.walk("/usr"):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(root, name)
            if p in skip:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not os.path.isfile(p) or os.path.islink(p) or st.st_size == 0 or st.st_size > 64 << 20:
                continue
            if not os.access(p, os.R_OK):
                continue
            out.append((p, st.st_size))
            total += st.st_size
            if total >= budget:
                return out, total
    return out, total


def layer_tar(path, files=(), whiteouts=(), extra=()):
    """An uncompressed layer tar: files (host paths, stored without the leading '/'), whiteouts
    (.wh. entries), extra (name, bytes or ('symlink', target))."""
    dirs = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        def parents(name):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1600000000
                    tf.addfile(ti)
        for p in files:
            name = p.lstrip("/")
            parents(name)
            ti = tf.gettarinfo(p, arcname=name)
            ti.uname = ti.gname = ""
            with open(p, "rb") as f:
                tf.addfile(ti, f)
        for w in whiteouts:
            parents(w)
            head, _, tail = w.rpartition("/")
            ti = tarfile.TarInfo((head + "/" if head else "") + ".wh." + tail)
            ti.mtime = 1600000000
            tf.addfile(ti)
        for name, data in extra:
            parents(name)
            ti = tarfile.TarInfo(name)
            ti.mtime = 1600000000
            if isinstance(data, tuple):
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, data[1], 0o777
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o755
                tf.addfile(ti, io.BytesIO(data))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def docker_archive(out, layer_paths, tag, cmd):
    """A docker-archive (what `docker save` / `podman save` write) of the given layer tars."""
    diff_ids = ["sha256:" + sha256_file(p) for p in layer_paths]
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2020-09-13T12:26:40Z",
                         "config": {"Cmd": cmd, "Env": ["PATH=/bin:/usr/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p, n in zip(layer_paths, names):
            tf.add(p, arcname=n)
        for n, data in ((config_name, config), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(n)
            ti.size, ti.mtime = len(data), 1600000000
            tf.addfile(ti, io.BytesIO(data))
    return os.path.getsize(out)


def build_big(tmp, size_mb):
    """4 layers of /usr files, about size_mb MB; layers 2-4 also white out a few files below."""
    per = (size_mb << 20) // 4
    taken, layers, below = set(), [], []
    for i in range(4):
        files, _ = usr_files(per, skip=taken)
        taken.update(p for p, _ in files)
        wh = [p.lstrip("/") for p, _ in below[::97][:20]]
        path = os.path.join(tmp, f"big{i}.tar")
        layer_tar(path, [p for p, _ in files], whiteouts=wh)
        layers.append(path)
        below = files
    out = os.path.join(tmp, "big.tar")
    size = docker_archive(out, layers, "bench-big:latest", ["/bin/sh"])
    for p in layers:
        os.unlink(p)
    return out, size


def build_launch_images(tmp):
    """A 5-layer image (busybox, then 4 layers of ~2 MB of /usr files each) and a flattened one
    with the same files in one layer."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    base = [("bin/busybox", bb)] + [(f"bin/{a}", ("symlink", "busybox")) for a in ("sh", "sleep", "true")]
    taken, groups = set(), []
    for _ in range(4):
        files, _ = usr_files(2 << 20, skip=taken)
        taken.update(p for p, _ in files)
        groups.append([p for p, _ in files])
    paths = []
    for i in range(5):
        p = os.path.join(tmp, f"l{i}.tar")
        if i == 0:
            layer_tar(p, extra=base)
        else:
            layer_tar(p, groups[i - 1])
        paths.append(p)
    five = os.path.join(tmp, "five.tar")
    docker_archive(five, paths, "bench-five:latest", ["sleep", "100000"])
    flat_layer = os.path.join(tmp, "flat-layer.tar")
    layer_tar(flat_layer, [p for g in groups for p in g], extra=base)
    flat = os.path.join(tmp, "flat.tar")
    docker_archive(flat, [flat_layer], "bench-flat:latest", ["sleep", "100000"])
    for p in paths + [flat_layer]:
        os.unlink(p)
    return five, flat


# --- gureum -----------------------------------------------------------------------------------

def cli_has_image_import(d):
    r = subprocess.run([GUREUM, "--socket", d.socket_path, "image", "import", "--help"], capture_output=True)
    return r.returncode == 0


def gureum_import(d, path, alias, use_cli):
    """Seconds to import path (until the image is stored); the image's fingerprint."""
    before = set(images(d))
    t0 = time.perf_counter()
    if use_cli:
        r = subprocess.run([GUREUM, "--socket", d.socket_path, "image", "import", path, "--alias", alias],
                           capture_output=True, timeout=1800)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"gureum image import: {r.stderr.decode().strip()}")
    else:
        st, _, env = d.request("POST", "/1.0/images", {"source": {"type": "file", "path": path},
                                                       "aliases": [alias]}, timeout=600)
        if st != 202:
            raise RuntimeError(f"POST /1.0/images: HTTP {st}: {env}")
        op = d.wait_operation(env["operation"], timeout=1800)
        dt = time.perf_counter() - t0
        if op.get("status_code") != 200:
            raise RuntimeError(f"import: {op.get('err')}")
    new = [fp for fp in images(d) if fp not in before]
    return dt, new[0] if new else None


def images(d):
    out = []
    for i in d.get("/1.0/images", expect=200)["metadata"]:
        out.append(i.rsplit("/", 1)[-1] if isinstance(i, str) else i.get("fingerprint"))
    return out


def launch(d, name, alias):
    body = {"name": name, "type": "container", "source": {"type": "image", "alias": alias},
            "command": ["sleep", "100000"], "start": True}
    t0 = time.perf_counter()
    st, _, env = d.request("POST", "/1.0/instances", body, timeout=120)
    if st != 202:
        raise RuntimeError(f"launch {name}: HTTP {st}: {env}")
    op = d.wait_operation(env["operation"], timeout=120)
    dt = time.perf_counter() - t0
    if op.get("status_code") != 200:
        raise RuntimeError(f"launch {name}: {op.get('err')}")
    return dt


def delete_instance(d, name):
    st, _, env = d.request("DELETE", f"/1.0/instances/{name}?force=1", timeout=120)
    if st == 202:
        d.wait_operation(env["operation"], timeout=120)


# --- podman -----------------------------------------------------------------------------------

def podman_load(path, runs):
    """Seconds of `podman load -i path` into a fresh vfs store, per run; None if unusable."""
    if not shutil.which("podman"):
        return None
    times = []
    for _ in range(runs):
        tmp = tempfile.mkdtemp(prefix="bench-podman-")
        base = ["podman", "--root", f"{tmp}/root", "--runroot", f"{tmp}/run", "--storage-driver", "vfs"]
        try:
            t0 = time.perf_counter()
            r = subprocess.run(base + ["load", "-q", "-i", path], capture_output=True, timeout=1800)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                print(f"podman load: skipped ({r.stderr.decode().strip()})", file=sys.stderr)
                return None
            times.append(dt)
        finally:
            subprocess.run(base + ["system", "reset", "-f"], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return times


# --- main -------------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200, help="size of the layered image's files")
    ap.add_argument("--runs", type=int, default=3, help="imports timed per tool")
    ap.add_argument("--launches", type=int, default=30, help="launches timed per image")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the archives (printed)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/images.py: run as root")

    tmp = tempfile.mkdtemp(prefix="bench-images-", dir="/var/tmp")
    try:
        t0 = time.perf_counter()
        big, big_size = build_big(tmp, a.size_mb)
        five, flat = build_launch_images(tmp)
        print(f"archives built in {time.perf_counter() - t0:.1f} s: {big} ({big_size / 1e6:.1f} MB, 4 layers)",
              file=sys.stderr)
        with open(big, "rb") as f:  # both tools read it from the page cache
            while f.read(1 << 20):
                pass

        # gureum: a fresh daemon (fresh store) per run, so every layer is unpacked every time.
        g_times, how = [], "API"
        for i in range(a.runs):
            d = Gureumd()
            d.start()
            try:
                use_cli = cli_has_image_import(d)
                how = "gureum image import" if use_cli else "POST /1.0/images"
                dt, _ = gureum_import(d, big, "bench-big", use_cli)
                g_times.append(dt)
                d.finish()
            finally:
                d.cleanup()
        p_times = None if a.no_podman else podman_load(big, a.runs)

        # launch: one daemon, both images, alternating.
        d = Gureumd()
        d.start()
        five_t, flat_t = [], []
        try:
            gureum_import(d, five, "bench-five", False)
            gureum_import(d, flat, "bench-flat", False)
            launch(d, "bench-warm", "bench-five")
            delete_instance(d, "bench-warm")
            for i in range(a.launches):
                for alias, xs in (("bench-five", five_t), ("bench-flat", flat_t)):
                    name = f"bench-{alias[6:]}-{i}"
                    xs.append(launch(d, name, alias))
                    delete_instance(d, name)
            d.finish()
        finally:
            d.cleanup()

        mb = big_size / 1e6
        print(f"\nimport of a {mb:.1f} MB docker-archive (4 layers), {a.runs} runs, {os.cpu_count()} CPUs")
        print(f"{'':34}{'median s':>10}{'MB/s':>10}")
        gm = med(g_times)
        print(f"{'gureum (' + how + ')':34}{gm:>10.2f}{mb / gm:>10.1f}")
        if p_times:
            pm = med(p_times)
            print(f"{'podman load (vfs)':34}{pm:>10.2f}{mb / pm:>10.1f}")
            print(f"throughput ratio gureum/podman: {pm / gm:.2f}")
        print(f"\nlaunch (POST /1.0/instances until running), {a.launches} each")
        print(f"{'':34}{'median ms':>10}{'p90 ms':>10}")
        for label, xs in (("5 layers", five_t), ("flattened (1 layer)", flat_t)):
            s = sorted(xs)
            print(f"{label:34}{med(s) * 1000:>10.1f}{s[min(len(s) - 1, int(len(s) * 0.9))] * 1000:>10.1f}")
        print(f"ratio 5 layers / flattened (median): {med(five_t) / med(flat_t):.2f}")
    finally:
        if a.keep:
            print(f"archives kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
