#!/usr/bin/env python3
"""bench/network.py: TCP throughput through gureum's networks against the same paths built by hand.

  bridge    container to container on gureum's default network (instance netns -> veth -> bridge
            -> veth -> instance netns) against two namespaces joined the same way to a bridge
            built by hand (plain veths, no nftables)
  forward   a client on an "outside host" (a namespace joined to the daemon's by a veth) to
            HOST_PORT on the daemon's address, forwarded (POST /1.0/networks/default/forwards,
            DNAT) to a container, against the same client reaching a hand-made server namespace
            through a hand-made router namespace's own DNAT rule (nft, one table, one rule) to its
            address, as a user would forward a port by hand

iperf3 (Debian's /usr/bin/iperf3) is the server and the client; the busybox image has none, so
it runs on the host's file system inside the instances' network namespaces
(`nsenter --net=RUN/netns/NAME iperf3 ...`): what is measured is the instances' real
veth/bridge/nftables path, not a program inside the containers. Everything runs in network
namespaces made for the run (gureumd in one of its own, as the tests start it); the machine's own
namespace is not touched. Every case alternates gureum and hand-made runs; the median of --runs
runs of --seconds each (iperf3 -J, received bits/s) is reported.

Not a test: nothing here passes or fails. Run as root after a build:
    /usr/bin/python3 bench/network.py [--runs 3] [--seconds 5] [--hand-made-only]
Goal (issue 6): gureum / hand-made >= 0.95 in both cases.
"""
import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from daemon import IP, NSENTER, Gureumd, NetNS, wait_gone  # noqa: E402  (the test harness)

IPERF3 = shutil.which("iperf3") or "/usr/bin/iperf3"
PORT = 5201
PREFIX = "bench-net"
TIMEOUT = 120


def sh(ns_path, argv, check=True):
    """argv in the network namespace at ns_path (nsenter --net: nothing else changes)."""
    r = subprocess.run([NSENTER, f"--net={ns_path}", "--", *argv], capture_output=True, text=True,
                       timeout=TIMEOUT)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} (in {ns_path}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def wait_for(pred, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def has_addr(ns_path, addr):
    r = sh(ns_path, [IP, "-4", "-o", "addr", "show"], check=False)
    return f" {addr}/" in r.stdout


class Iperf3Server:
    """`iperf3 -s` in a namespace, its output in a file; ready once it printed 'Server listening'."""

    def __init__(self, ns_path, tmp, tag):
        self.log = os.path.join(tmp, f"iperf3-server-{tag}.log")
        self.ns_path = ns_path
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([NSENTER, f"--net={ns_path}", "--", IPERF3, "-s", "-p", str(PORT),
                                          "--forceflush"], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for(self._ready, f"iperf3 -s in {ns_path} (log {self.log})")

    def _ready(self):
        if self.proc.poll() is not None:
            with open(self.log, errors="replace") as f:
                raise RuntimeError(f"iperf3 -s in {self.ns_path} exited {self.proc.returncode}: {f.read()}")
        with open(self.log, errors="replace") as f:
            return "Server listening" in f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def iperf3_client(ns_path, addr, seconds):
    """One iperf3 -c run from the namespace at ns_path; returns the received Gbit/s."""
    r = sh(ns_path, [IPERF3, "-c", addr, "-p", str(PORT), "-t", str(seconds), "-O", "1", "-J"], check=False)
    try:
        res = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 -c {addr} (in {ns_path}): exit {r.returncode}: {r.stderr or r.stdout}")
    if "error" in res:
        raise RuntimeError(f"iperf3 -c {addr} (in {ns_path}): {res['error']}")
    return res["end"]["sum_received"]["bits_per_second"] / 1e9


def free_subnets(taken, count, prefixlen):
    """count subnets of 10.200.0.0/13 with this prefix length that overlap none of taken."""
    out = []
    for net in ipaddress.ip_network("10.200.0.0/13").subnets(new_prefix=prefixlen):
        if not any(net.overlaps(t) or any(net.overlaps(o) for o in out) for t in taken):
            out.append(net)
            if len(out) == count:
                return out
    raise RuntimeError("no free subnet")


class HandMade:
    """The same topology built by hand: a router namespace (the "host") with a bridge and
    ip_forward, two server/client namespaces each joined to the bridge by a veth; and the outside
    client namespace joined to the router by a veth."""

    def __init__(self):
        self.ns = []  # every namespace made, for delete() (even when build() failed half-way)

    def build(self, outside, taken):
        lan, link = free_subnets(taken, 2, 24)
        hosts = list(lan.hosts())
        self.gw, self.a_addr, self.b_addr = str(hosts[0]), str(hosts[1]), str(hosts[2])
        self.router, self.a, self.b = self._netns(), self._netns(), self._netns()
        r = self.router.path
        sh(r, [IP, "link", "add", "hbr0", "type", "bridge"])
        sh(r, [IP, "addr", "add", f"{self.gw}/{lan.prefixlen}", "dev", "hbr0"])
        sh(r, [IP, "link", "set", "hbr0", "up"])
        sh(r, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        for i, (ns, addr) in enumerate(((self.a, self.a_addr), (self.b, self.b_addr))):
            sh(r, [IP, "link", "add", f"hveth{i}", "type", "veth", "peer", "name", "eth0", "netns", ns.name])
            sh(r, [IP, "link", "set", f"hveth{i}", "master", "hbr0", "up"])
            sh(ns.path, [IP, "addr", "add", f"{addr}/{lan.prefixlen}", "dev", "eth0"])
            sh(ns.path, [IP, "link", "set", "eth0", "up"])
            sh(ns.path, [IP, "route", "add", "default", "via", self.gw])
        # the outside client's link to the router
        ra, oa = [str(h) for h in list(link.hosts())[:2]]
        sh(r, [IP, "link", "add", "hout", "type", "veth", "peer", "name", "toh", "netns", outside.name])
        sh(r, [IP, "addr", "add", f"{ra}/{link.prefixlen}", "dev", "hout"])
        sh(r, [IP, "link", "set", "hout", "up"])
        sh(outside.path, [IP, "addr", "add", f"{oa}/{link.prefixlen}", "dev", "toh"])
        sh(outside.path, [IP, "link", "set", "toh", "up"])
        sh(outside.path, [IP, "route", "add", str(lan), "via", ra])
        # the hand-made port forward: the same DNAT a user would write (conntrack and NAT on
        # the path, as on gureum's)
        self.router_addr = ra
        for argv in (["add", "table", "ip", "hand"],
                     ["add", "chain", "ip", "hand", "pre", "{ type nat hook prerouting priority dstnat; }"],
                     ["add", "rule", "ip", "hand", "pre", "ip", "daddr", ra, "tcp", "dport", str(PORT), "dnat",
                      "to", f"{self.a_addr}:{PORT}"]):
            sh(r, ["nft", *argv])
        self.subnets = [lan, link]

    def _netns(self):
        ns = NetNS(prefix="gb-")
        self.ns.append(ns)
        return ns

    def delete(self):
        for ns in self.ns:
            left = ns.processes()
            for p in left:
                try:
                    os.kill(p, 9)
                except OSError:
                    pass
            wait_gone(left)
            ns.delete()


def gureum_side(d, outside, taken):
    """Two containers on the default network and the outside client's link to the daemon's
    namespace; returns (c1 netns, c1 address, c2 netns, daemon address for the outside)."""
    for name in (f"{PREFIX}-1", f"{PREFIX}-2"):
        env = d.post("/1.0/instances", {"name": name, "type": "container",
                                        "source": {"type": "image", "alias": "busybox"},
                                        "command": ["sleep", "100000"], "start": True}, expect=202)
        op = d.wait_operation(env["operation"], timeout=TIMEOUT)
        if op["status_code"] != 200:
            raise RuntimeError(f"launch {name}: {op['err']}")
    out = []
    for name in (f"{PREFIX}-1", f"{PREFIX}-2"):
        inst = d.get(f"/1.0/instances/{name}", expect=200)["metadata"]
        addr = (inst.get("network") or {}).get("ipv4")
        if not addr:
            raise RuntimeError(f"{name} has no address on a network: {inst.get('network')}")
        ns_path = os.path.join(d.run_dir, "netns", name)
        wait_for(lambda: has_addr(ns_path, addr), f"{addr} on {name}'s eth0 ({ns_path})")
        out.append((ns_path, addr))
    (link,) = free_subnets(taken, 1, 30)
    da, oa = [str(h) for h in link.hosts()]
    dp = d.netns_path
    sh(dp, [IP, "link", "add", "bout", "type", "veth", "peer", "name", "tog", "netns", outside.name])
    sh(dp, [IP, "addr", "add", f"{da}/{link.prefixlen}", "dev", "bout"])
    sh(dp, [IP, "link", "set", "bout", "up"])
    sh(outside.path, [IP, "addr", "add", f"{oa}/{link.prefixlen}", "dev", "tog"])
    sh(outside.path, [IP, "link", "set", "tog", "up"])
    d.post("/1.0/networks/default/forwards", {"protocol": "tcp", "host_port": PORT, "instance": f"{PREFIX}-1",
                                               "port": PORT}, expect=200)
    return out[0][0], out[0][1], out[1][0], da


def measure(cases, runs, seconds):
    """cases: {case: {side: (server netns, client netns, address)}}; every run alternates the
    sides. Returns {case: {side: [Gbit/s...]}}."""
    res = {c: {s: [] for s in sides} for c, sides in cases.items()}
    for case, sides in cases.items():
        for i in range(runs):
            for side, (client_ns, addr) in sides.items():
                g = iperf3_client(client_ns, addr, seconds)
                res[case][side].append(g)
                print(f"  {case}, {side}, run {i + 1}: {g:.2f} Gbit/s", file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="iperf3 runs per case and side (median reported)")
    ap.add_argument("--seconds", type=int, default=5, help="seconds per iperf3 run (after 1 s omitted)")
    ap.add_argument("--hand-made-only", action="store_true",
                    help="only the hand-made half (no gureumd): checks the topology and iperf3")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/network.py: run as root (it makes network namespaces)")

    tmp = tempfile.mkdtemp(prefix="bench-net-")
    d = outside = hand = None
    servers = []
    try:
        outside = NetNS(prefix="gb-")
        taken = []
        if not a.hand_made_only:
            d = Gureumd()
            d.start()
            net = d.get("/1.0/networks/default", expect=200)["metadata"]
            taken.append(ipaddress.ip_network(net["subnet"]))
        hand = HandMade()
        hand.build(outside, taken)
        taken += hand.subnets
        servers.append(Iperf3Server(hand.a.path, tmp, "hand"))
        cases = {"container to container (bridge)": {"hand-made": (hand.b.path, hand.a_addr)},
                 "client to container (forward)": {"hand-made": (outside.path, hand.router_addr)}}
        if d is not None:
            c1_ns, c1_addr, c2_ns, daemon_addr = gureum_side(d, outside, taken)
            servers.append(Iperf3Server(c1_ns, tmp, "gureum"))
            cases["container to container (bridge)"]["gureum"] = (c2_ns, c1_addr)
            cases["client to container (forward)"]["gureum"] = (outside.path, daemon_addr)
        print(f"{a.runs} runs of {a.seconds} s per case and side ({IPERF3}, -O 1, received bits/s)",
              file=sys.stderr)
        res = measure(cases, a.runs, a.seconds)
    finally:
        def stop_gureum():
            if d is None:
                return
            try:
                if d.running():
                    d.request("DELETE", f"/1.0/networks/default/forwards/tcp/{PORT}")
                    d.finish()  # every instance deleted through the API, a clean stop
            finally:
                d.cleanup()  # dnsmasq killed, nothing left in its namespace, namespace deleted
        steps = [s.stop for s in servers] + [stop_gureum]
        steps += [hand.delete] if hand is not None else []
        steps += [outside.delete] if outside is not None else []
        failed = []
        for step in steps:  # every step, even after one failed
            try:
                step()
            except Exception as e:  # noqa: BLE001: raised below, once everything is removed
                failed.append(e)
        shutil.rmtree(tmp, ignore_errors=True)
        if failed:
            raise failed[0]

    print(f"\nTCP throughput, {os.cpu_count()} CPUs, median of {a.runs} x {a.seconds} s (iperf3)")
    print(f"{'case':36}{'gureum Gbit/s':>15}{'hand-made Gbit/s':>18}{'ratio':>8}")
    for case, sides in res.items():
        h = statistics.median(sides["hand-made"])
        g = statistics.median(sides["gureum"]) if "gureum" in sides else None
        gs = f"{g:.2f}" if g is not None else "-"
        ratio = f"{g / h:.2f}" if g is not None and h > 0 else "-"
        print(f"{case:36}{gs:>15}{h:>18.2f}{ratio:>8}")
    print("goal: ratio >= 0.95 (iperf3 runs on the host's file system in the instances' network namespaces:"
          " busybox has no iperf3)")


if __name__ == "__main__":
    main()
