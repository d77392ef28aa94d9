"""Networks (issue 6): bridges, IPAM, DNS, NAT, isolation, port forwards, drift repair.

Every gureumd of the suite runs in a network namespace of its own (daemon.py): its bridges,
veths, nftables table and dnsmasq live there, never in the machine's own namespace. A second
namespace, "outside", plays another host: a veth joins it to the daemon's namespace with
192.0.2.1 (the daemon's side) and 192.0.2.2 (outside), and outside has no route back to the
instances' subnets, so only NAT lets an instance's traffic come back.
"""
import json
import os
import re
import socket
import subprocess
import threading

import pytest

from daemon import IP, TIMEOUT, NetNS, gureumd  # noqa: F401 (fixture)
from helpers import wait_for
from storage import action, create, error, run_op, sh

pytestmark = pytest.mark.usefixtures("gureumd")

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"]


def post(d, path, body):
    st, _, env = d.request("POST", path, body=json.dumps(body).encode())
    assert st == 200, f"POST {path}: HTTP {st}: {env}"
    return env["metadata"]


def instance(d, name):
    return d.get(f"/1.0/instances/{name}")["metadata"]


def addr_of(d, name):
    return instance(d, name)["network"]["ipv4"]


def in_daemon_ns(d, argv, check=True):
    r = subprocess.run(d.in_netns(argv), capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def links(d):
    out = in_daemon_ns(d, [IP, "-o", "link", "show"]).stdout
    return {m.group(1) for m in re.finditer(r"^\d+: ([^:@]+)[:@]", out, re.M)}


def nft_table(d):
    return in_daemon_ns(d, ["nft", "list", "table", "inet", "gureum"], check=False).stdout


def dnsmasq_pid(d, network):
    try:
        with open(os.path.join(d.run_dir, "networks", network, "dnsmasq.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"dnsmasq" not in f.read():
                return None
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture
def outside(gureumd):
    """Another host: a namespace joined to the daemon's by a veth (192.0.2.0/24)."""
    ns = NetNS(prefix="gto-")
    try:
        in_daemon_ns(gureumd, [IP, "link", "add", "gtout", "type", "veth", "peer", "name", "eth0", "netns", ns.name])
        in_daemon_ns(gureumd, [IP, "addr", "add", "192.0.2.1/24", "dev", "gtout"])
        in_daemon_ns(gureumd, [IP, "link", "set", "gtout", "up"])
        for argv in ([IP, "addr", "add", "192.0.2.2/24", "dev", "eth0"], [IP, "link", "set", "eth0", "up"]):
            r = ns.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == 0, r.stderr
        yield ns
    finally:
        ns.delete()


class Server:
    """A TCP server in a namespace: answers each connection with its peer's address."""

    def __init__(self, ns, port):
        self.sock = ns.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(8)
        self.peers = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            with c:
                c.sendall(f"peer={peer[0]}\n".encode())

    def close(self):
        self.sock.close()


# --- the default network ------------------------------------------------------------------------

def test_default_network_exists_from_the_first_start(gureumd):
    assert gureumd.get("/1.0/networks")["metadata"] == ["/1.0/networks/default"]
    net = gureumd.get("/1.0/networks/default")["metadata"]
    assert net["nat"] is True and net["isolated"] is False and net["status"] == "Created", net
    assert net["subnet"].endswith("/24") and net["gateway"].endswith(".1"), net
    assert net["bridge"] in links(gureumd)
    out = in_daemon_ns(gureumd, [IP, "-4", "addr", "show", "dev", net["bridge"]]).stdout
    assert f"{net['gateway']}/24" in out, out
    assert dnsmasq_pid(gureumd, "default"), "the default network's dnsmasq does not run"
    table = nft_table(gureumd)
    assert "masquerade" in table, table


# --- two instances, DNS, isolation -------------------------------------------------------------

def test_two_instances_reach_each_other_by_address_and_by_name(gureumd):
    create(gureumd, "c1")
    create(gureumd, "c2")
    a1, a2 = addr_of(gureumd, "c1"), addr_of(gureumd, "c2")
    assert a1 != a2
    st = instance(gureumd, "c1")["state"]["network"]["eth0"]
    assert st["addresses"][0]["address"] == a1 and st["addresses"][0]["netmask"] == "24"
    # Inside: eth0 has the address, the default route goes to the gateway.
    out = sh(gureumd, "c1", "ip -4 addr show eth0; ip route")
    assert a1 in out and "default via" in out, out
    sh(gureumd, "c1", f"ping -c 1 -W 5 {a2}")
    # By name: the network's dnsmasq answers for NAME and NAME.gureum.
    out = sh(gureumd, "c1", "ping -c 1 -W 5 c2")
    assert a2 in out, out
    out = sh(gureumd, "c2", "nslookup c1.gureum")
    assert a1 in out, out


def test_isolated_networks_cannot_reach_each_other(gureumd):
    post(gureumd, "/1.0/networks", {"name": "n1", "subnet": "10.77.1.0/24", "isolated": True})
    post(gureumd, "/1.0/networks", {"name": "n2", "subnet": "10.77.2.0/24", "isolated": True})
    create(gureumd, "a", config={"network": "n1"})
    create(gureumd, "b", config={"network": "n2"})
    assert addr_of(gureumd, "a") == "10.77.1.2" and addr_of(gureumd, "b") == "10.77.2.2"
    # Each reaches its own gateway ...
    sh(gureumd, "a", "ping -c 1 -W 5 10.77.1.1")
    sh(gureumd, "b", "ping -c 1 -W 5 10.77.2.1")
    # ... but not the other network (both ways).
    sh(gureumd, "a", "ping -c 1 -W 2 10.77.2.2", expect=1)
    sh(gureumd, "b", "ping -c 1 -W 2 10.77.1.2", expect=1)


def test_network_none_has_loopback_only(gureumd):
    create(gureumd, "lo1", config={"network": "none"})
    assert instance(gureumd, "lo1")["network"] is None
    out = sh(gureumd, "lo1", "ip -o link show")
    names = re.findall(r"^\d+: ([^:@]+)", out, re.M)
    assert names == ["lo"], out
    assert "UP" in out.splitlines()[0], out
    sh(gureumd, "lo1", "ping -c 1 -W 5 127.0.0.1")


# --- NAT and forwards --------------------------------------------------------------------------------

def test_nat_reaches_the_outside(gureumd, outside):
    srv = Server(outside, 8081)
    try:
        create(gureumd, "c1")
        out = sh(gureumd, "c1", "nc 192.0.2.2 8081 </dev/null")
        # outside has no route to the instance: it answered the masqueraded address.
        assert "peer=192.0.2.1" in out, out
    finally:
        srv.close()


def test_a_forward_reaches_a_server_in_an_instance(gureumd, outside):
    create(gureumd, "web", command=HTTPD)
    fw = post(gureumd, "/1.0/networks/default/forwards",
              {"protocol": "tcp", "host_port": 18080, "instance": "web", "port": 8080})
    assert fw == {"protocol": "tcp", "host_port": 18080, "instance": "web", "port": 8080,
                  "address": addr_of(gureumd, "web")}

    def fetch(ns_argv):
        r = subprocess.run(ns_argv, capture_output=True, text=True, timeout=TIMEOUT)
        return r.stdout if r.returncode == 0 else None

    # From another host, through the daemon host's address.
    wait_for(lambda: fetch(outside.argv(["busybox", "wget", "-qO-", "http://192.0.2.1:18080/"])) == "hello-from-web\n",
             what="the forward from outside")
    # From the host itself: its loopback and its own address.
    for url in ("http://127.0.0.1:18080/", "http://192.0.2.1:18080/"):
        assert fetch(gureumd.in_netns(["busybox", "wget", "-qO-", url])) == "hello-from-web\n", url
    assert gureumd.get("/1.0/networks/default/forwards")["metadata"] == [fw]
    assert gureumd.get("/1.0/networks/default/forwards/tcp/18080")["metadata"] == fw

    # From instances: another one, and the server's own (its bridge port is in hairpin mode).
    create(gureumd, "other")
    for name in ("other", "web"):
        assert sh(gureumd, name, "wget -qO- http://192.0.2.1:18080/") == "hello-from-web\n", name

    # The same port again, another instance, a bad port: clear errors, nothing changed.
    table = nft_table(gureumd)
    error(gureumd, "POST", "/1.0/networks/default/forwards",
          {"host_port": 18080, "instance": "other", "port": 80}, code=409, contains="forwarded already")
    error(gureumd, "POST", "/1.0/networks/default/forwards",
          {"host_port": 0, "instance": "other", "port": 80}, contains="host_port")
    error(gureumd, "POST", "/1.0/networks/default/forwards",
          {"host_port": 18081, "instance": "nope", "port": 80}, code=404, contains="nope")
    error(gureumd, "POST", "/1.0/networks/default/forwards",
          {"host_port": 18081, "instance": "other", "port": 80, "protocol": "sctp"}, contains="tcp or udp")
    assert nft_table(gureumd) == table
    assert len(gureumd.get("/1.0/networks/default/forwards")["metadata"]) == 1

    st, _, _ = gureumd.request("DELETE", "/1.0/networks/default/forwards/tcp/18080")
    assert st == 200
    assert gureumd.get("/1.0/networks/default/forwards")["metadata"] == []
    assert "18080" not in nft_table(gureumd)
    with pytest.raises(ConnectionRefusedError):  # nothing listens there on the host itself
        outside.create_connection(("192.0.2.1", 18080), timeout=TIMEOUT).close()
    error(gureumd, "DELETE", "/1.0/networks/default/forwards/tcp/18080", code=404)


def test_deleting_an_instance_removes_its_link_forward_and_address(gureumd):
    create(gureumd, "c1")
    create(gureumd, "c2")
    a1 = addr_of(gureumd, "c1")
    post(gureumd, "/1.0/networks/default/forwards", {"host_port": 2222, "instance": "c1", "port": 22})
    before = links(gureumd)
    assert len([x for x in before if x.startswith("grv")]) == 2, before
    run_op(gureumd, "DELETE", "/1.0/instances/c1?force=1")
    assert len([x for x in links(gureumd) if x.startswith("grv")]) == 1
    assert not os.path.exists(os.path.join(gureumd.run_dir, "netns", "c1"))
    assert gureumd.get("/1.0/networks/default/forwards")["metadata"] == []
    assert "2222" not in nft_table(gureumd)
    hosts = open(os.path.join(gureumd.run_dir, "networks", "default", "hosts")).read()
    assert "c1" not in hosts and "c2" in hosts, hosts
    # Its address is free again: the next instance gets it.
    create(gureumd, "c3")
    assert addr_of(gureumd, "c3") == a1


# --- what instances and other hosts must not reach ----------------------------------------------

def test_other_hosts_reach_a_nat_network_only_through_forwards(gureumd, outside):
    create(gureumd, "web", command=HTTPD)
    addr = addr_of(gureumd, "web")
    r = outside.run([IP, "route", "add", "10.0.0.0/8", "via", "192.0.2.1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(OSError):
        outside.create_connection((addr, 8080), timeout=3).close()
    post(gureumd, "/1.0/networks/default/forwards", {"host_port": 18081, "instance": "web", "port": 8080})
    wait_for(lambda: fetch_ok(outside.argv(["busybox", "wget", "-qO-", "http://192.0.2.1:18081/"])),
             what="the forward")


def test_no_ipv6_on_bridges_and_instances(gureumd):
    create(gureumd, "c1")
    bridge = gureumd.get("/1.0/networks/default")["metadata"]["bridge"]
    out = in_daemon_ns(gureumd, ["cat", f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6"]).stdout
    assert out.strip() == "1"
    assert sh(gureumd, "c1", "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6").strip() == "1"
    assert "inet6" not in sh(gureumd, "c1", "ip addr show eth0")


def net_prefix(d):
    return d.get("/1.0/networks/default")["metadata"]["gateway"].rsplit(".", 1)[0]


def fetch_ok(argv):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    return r.returncode == 0 and r.stdout == "hello-from-web\n"


# --- addresses ------------------------------------------------------------------------------------

def test_addresses_survive_restarts_and_a_static_one_is_kept(gureumd):
    create(gureumd, "c1")
    net = gureumd.get("/1.0/networks/default")["metadata"]
    prefix = net["gateway"].rsplit(".", 1)[0]
    create(gureumd, "s1", config={"ipv4.address": f"{prefix}.50"})
    a1 = addr_of(gureumd, "c1")
    assert addr_of(gureumd, "s1") == f"{prefix}.50"
    out = sh(gureumd, "s1", "ip -4 addr show eth0")
    assert f"{prefix}.50/24" in out, out

    # The instance restarts: same address.
    action(gureumd, "c1", "restart")
    assert f"{a1}/24" in sh(gureumd, "c1", "ip -4 addr show eth0")
    # The daemon restarts (instances keep running): same addresses, and a stop/start keeps them.
    gureumd.stop()
    gureumd.start()
    assert addr_of(gureumd, "c1") == a1
    sh(gureumd, "c1", f"ping -c 1 -W 5 {prefix}.50")
    action(gureumd, "c1", "stop", force=True)
    action(gureumd, "c1", "start")
    assert f"{a1}/24" in sh(gureumd, "c1", "ip -4 addr show eth0")

    # A static address that is taken, or outside the subnet: clear errors, no instance made.
    names = gureumd.get("/1.0/instances")["metadata"]
    for addr, code, text in ((f"{prefix}.50", 409, "taken by instance s1"),
                             ("10.99.99.5", 400, "not an instance address"),
                             (f"{prefix}.1", 400, "not an instance address"),
                             ("10.1.2", 400, "ipv4.address")):
        st, _, env = gureumd.request("POST", "/1.0/instances", body=json.dumps(
            {"name": "s2", "source": {"type": "image", "alias": "busybox"},
             "config": {"ipv4.address": addr}}).encode())
        assert st == code and text in env["error"], (addr, st, env)
    assert gureumd.get("/1.0/instances")["metadata"] == names
    st, _, env = gureumd.request("POST", "/1.0/instances", body=json.dumps(
        {"name": "s2", "source": {"type": "image", "alias": "busybox"}, "config": {"network": "nope"}}).encode())
    assert st == 404 and "network nope does not exist" in env["error"], env


# --- network create and delete ------------------------------------------------------------------

def test_bad_networks_are_refused_and_change_nothing(gureumd, outside):
    before_links, before_table = links(gureumd), nft_table(gureumd)
    before = gureumd.get("/1.0/networks?recursion=1")["metadata"]
    default = before[0]["subnet"]
    cases = [
        ({"name": "x", "subnet": "10.0.0.1/24"}, 400, "did you mean 10.0.0.0/24"),
        ({"name": "x", "subnet": "10.0.0.0/33"}, 400, "subnet"),
        ({"name": "x", "subnet": "300.0.0.0/24"}, 400, "subnet"),
        ({"name": "x", "subnet": "banana"}, 400, "subnet"),
        ({"name": "x", "subnet": default}, 409, "overlaps network default"),
        ({"name": "x", "subnet": "192.0.2.0/25"}, 409, "already reaches"),
        ({"name": "x", "subnet": "127.1.0.0/16"}, 400, "loopback"),
        ({"name": "x", "subnet": "169.254.3.0/24"}, 400, "link-local"),
        ({"name": "x", "subnet": "224.1.0.0/16"}, 400, "multicast"),
        ({"name": "default"}, 409, "already exists"),
        ({"name": "Bad_Name"}, 400, "network name"),
        ({"name": "x", "nat": "yes"}, 400, "nat"),
        ({"name": "x", "colour": "blue"}, 400, "unknown key"),
    ]
    for body, code, text in cases:
        error(gureumd, "POST", "/1.0/networks", body, code=code, contains=text)
    assert gureumd.get("/1.0/networks?recursion=1")["metadata"] == before
    assert links(gureumd) == before_links
    assert nft_table(gureumd) == before_table
    assert os.listdir(os.path.join(gureumd.state_dir, "networks")) == ["default"]


def test_delete_network_refused_in_use_then_removes_everything(gureumd):
    net = post(gureumd, "/1.0/networks", {"name": "n1", "subnet": "10.78.0.0/24", "nat": True})
    assert net["bridge"] in links(gureumd) and dnsmasq_pid(gureumd, "n1")
    assert "10.78.0.0/24" in nft_table(gureumd)
    create(gureumd, "c1", config={"network": "n1"})
    assert gureumd.get("/1.0/networks/n1")["metadata"]["used_by"] == ["/1.0/instances/c1"]
    error(gureumd, "DELETE", "/1.0/networks/n1", code=409, contains="used by instance c1")
    run_op(gureumd, "DELETE", "/1.0/instances/c1?force=1")
    pid = dnsmasq_pid(gureumd, "n1")
    st, _, env = gureumd.request("DELETE", "/1.0/networks/n1")
    assert st == 200, env
    assert net["bridge"] not in links(gureumd)
    assert "10.78.0.0" not in nft_table(gureumd)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or b"dnsmasq" not in open(f"/proc/{pid}/cmdline", "rb").read() \
        or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    assert not os.path.exists(os.path.join(gureumd.state_dir, "networks", "n1"))
    assert not os.path.exists(os.path.join(gureumd.run_dir, "networks", "n1"))
    error(gureumd, "DELETE", "/1.0/networks/n1", code=404)


# --- drift ------------------------------------------------------------------------------------------

def test_restart_repairs_drift_and_leaves_other_tables_alone(gureumd):
    create(gureumd, "c1")
    create(gureumd, "c2")
    a2 = addr_of(gureumd, "c2")
    bridge = gureumd.get("/1.0/networks/default")["metadata"]["bridge"]
    gureumd.stop()
    # Someone deletes the bridge (under a running dnsmasq), edits our table and has a table of
    # their own.
    in_daemon_ns(gureumd, [IP, "link", "del", bridge])
    in_daemon_ns(gureumd, ["nft", "add", "chain", "inet", "gureum", "stale"])
    in_daemon_ns(gureumd, ["nft", "add", "table", "inet", "theirs"])
    in_daemon_ns(gureumd, ["nft", "add", "chain", "inet", "theirs", "keep"])
    gureumd.start()
    assert bridge in links(gureumd)
    assert dnsmasq_pid(gureumd, "default")
    table = nft_table(gureumd)
    assert "stale" not in table and "masquerade" in table, table
    assert "chain keep" in in_daemon_ns(gureumd, ["nft", "list", "table", "inet", "theirs"]).stdout
    # The running instances' veths are back on the bridge: they reach each other again, and the
    # new dnsmasq answers on the new bridge.
    sh(gureumd, "c1", f"ping -c 1 -W 5 {a2}")
    assert a2 in sh(gureumd, "c1", "nslookup c2")
    in_daemon_ns(gureumd, ["nft", "delete", "table", "inet", "theirs"])


def test_a_dead_dnsmasq_is_started_again(gureumd):
    pid = dnsmasq_pid(gureumd, "default")
    assert pid
    os.kill(pid, 9)
    wait_for(lambda: dnsmasq_pid(gureumd, "default") not in (None, pid), what="a new dnsmasq")
