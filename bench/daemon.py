#!/usr/bin/env python3
"""bench/daemon.py: gureumd's control-plane numbers, with podman as the anchor, in one run.

  launch latency   POST /1.0/instances {"start": true} until its operation is done (the container
                   runs), one at a time; podman: `podman run -d` of the same busybox rootfs (vfs)
  launches/s       the same through the API with --parallel clients at once
  list latency     GET /1.0/instances and ?recursion=1 with --count instances (running)
  daemon RSS       VmRSS / VmHWM of gureumd with --count instances

Not a test: nothing here passes or fails. Run as root after `make build`:
    /usr/bin/python3 bench/daemon.py [--count 1000] [--launches 100] [--parallel 4] [--no-podman]
Targets (issue 4): launch <= 30 ms, >= 50 launches/s on 2 cores, list of 1000 <= 50 ms, RSS <= 15 MB.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from daemon import Gureumd  # noqa: E402  (the test harness: starts gureumd, HTTP over its socket)

PREFIX = "bench"


def launch(d, name):
    """Creates and starts one instance; returns the seconds until its operation finished."""
    body = json.dumps({"name": name, "type": "container", "source": {"type": "image", "alias": "busybox"},
                       "command": ["sleep", "100000"], "start": True}).encode()
    t0 = time.perf_counter()
    st, _, env = d.request("POST", "/1.0/instances", body=body, timeout=120)
    if st != 202:
        raise RuntimeError(f"launch {name}: HTTP {st}: {env}")
    op = d.wait_operation(env["operation"], timeout=120)
    dt = time.perf_counter() - t0
    if op.get("status_code") != 200:
        raise RuntimeError(f"launch {name}: {op.get('err')}")
    return dt


def ms(v):
    return f"{v * 1000:.1f} ms"


def summary(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.9))]


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out


def podman_launches(n):
    """podman run -d of a busybox rootfs imported into a throw-away vfs store; None if unusable."""
    if not shutil.which("podman") or not os.path.exists("/bin/busybox"):
        return None
    tmp = tempfile.mkdtemp(prefix="bench-podman-")
    base = ["podman", "--root", f"{tmp}/root", "--runroot", f"{tmp}/run", "--storage-driver", "vfs"]
    try:
        rootfs = f"{tmp}/rootfs"
        os.makedirs(f"{rootfs}/bin")
        shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
        for applet in ("sh", "sleep"):
            os.symlink("busybox", f"{rootfs}/bin/{applet}")
        subprocess.run(["tar", "-C", rootfs, "-cf", f"{tmp}/rootfs.tar", "."], check=True)
        subprocess.run(base + ["import", f"{tmp}/rootfs.tar", "bench-busybox"], check=True, capture_output=True)
        # runc: podman's default crun refuses hybrid cgroup hosts (../shared/ENVIRONMENT.md)
        run = base + ["run", "-d", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--net", "none",
                      "--ulimit", "nofile=20000:20000",
                      "--ulimit", "nproc=32768:32768", "bench-busybox", "sleep", "100000"]
        subprocess.run(run, check=True, capture_output=True)  # warm-up
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(run, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return times
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"podman: skipped ({e})", file=sys.stderr)
        return None
    finally:
        subprocess.run(base + ["rm", "-f", "-a", "-t", "0"], capture_output=True)
        subprocess.run(base + ["system", "reset", "-f"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1000, help="instances for the list and RSS figures")
    ap.add_argument("--launches", type=int, default=100, help="launches timed one at a time, and in parallel")
    ap.add_argument("--parallel", type=int, default=4, help="concurrent clients for launches/s")
    ap.add_argument("--no-podman", action="store_true")
    a = ap.parse_args()

    d = Gureumd()
    d.start()
    try:
        launch(d, f"{PREFIX}-warm")  # first use builds the busybox image
        seq = [launch(d, f"{PREFIX}-s{i}") for i in range(a.launches)]

        names = [f"{PREFIX}-p{i}" for i in range(a.launches)]
        errors = []

        def worker(part):
            for n in part:
                try:
                    launch(d, n)
                except Exception as e:  # report, don't hang the bench
                    errors.append(str(e))
        threads = [threading.Thread(target=worker, args=(names[i::a.parallel],)) for i in range(a.parallel)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        par_s = time.perf_counter() - t0
        if errors:
            print(f"parallel launches: {len(errors)} failed, first: {errors[0]}", file=sys.stderr)

        existing = 1 + 2 * a.launches
        for i in range(max(0, a.count - existing)):
            launch(d, f"{PREFIX}-f{i}")
        total = len(d.get("/1.0/instances")["metadata"])

        def timed_get(path, n=20):
            xs = []
            for _ in range(n):
                t0 = time.perf_counter()
                d.get(path, timeout=120)
                xs.append(time.perf_counter() - t0)
            return summary(xs)
        list_plain = timed_get("/1.0/instances")
        list_full = timed_get("/1.0/instances?recursion=1")
        mem = rss(d.proc.pid)
    finally:
        for n in d.get("/1.0/instances")["metadata"]:
            name = n.rsplit("/", 1)[-1]
            st, _, env = d.request("DELETE", f"/1.0/instances/{name}?force=1", timeout=120)
            if st == 202:
                d.wait_operation(env["operation"], timeout=120)
        d.stop()
        d.cleanup()

    pod = None if a.no_podman else podman_launches(min(a.launches, 20))
    med, p90 = summary(seq)
    print(f"\ngureumd, {total} instances, {os.cpu_count()} CPUs")
    print(f"{'':28}{'median':>12}{'p90':>12}")
    print(f"{'launch (gureum API)':28}{ms(med):>12}{ms(p90):>12}")
    if pod:
        pmed, pp90 = summary(pod)
        print(f"{'launch (podman run -d)':28}{ms(pmed):>12}{ms(pp90):>12}")
        print(f"ratio gureum/podman (median launch): {med / pmed:.2f}")
    print(f"launches/s, {a.parallel} clients: {a.launches / par_s:.1f} ({a.launches} in {par_s:.2f} s)")
    print(f"{'list, names':28}{ms(list_plain[0]):>12}{ms(list_plain[1]):>12}")
    print(f"{'list, recursion=1':28}{ms(list_full[0]):>12}{ms(list_full[1]):>12}")
    print(f"gureumd RSS: {mem.get('VmRSS', 0) / 1024:.1f} MiB (peak {mem.get('VmHWM', 0) / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
