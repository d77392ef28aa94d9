"""`gureum network` (src/cli/network.c) against the contract of /1.0/networks.

Three layers:
  - usage errors, found before anything is sent (no daemon: the socket does not exist): ports
    that are not 1..65535 in decimal, INSTANCE:PORT without its ':' or a part, a protocol other
    than tcp/udp, missing and extra arguments. Exit status 2 and one line on stderr.
  - the requests the CLI sends and what it prints, against a stand-in gureumd (a small HTTP
    server on a unix socket that records each request and answers with canned envelopes): the
    method, path (names percent-encoded, the forward's PROTO/HOST_PORT) and JSON body of every
    subcommand, the table, CSV, JSON and YAML output, the daemon's error as one line, exit 1.
  - the real gureumd (the daemon fixture runs it in a network namespace of its own): create,
    list in every format, info, a duplicate refused, forwards to an instance on the network,
    delete refused while an instance uses the network, delete.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_network_cli.py
"""
import csv
import http.server
import io
import ipaddress
import json
import os
import socketserver
import subprocess
import threading

import pytest
import yaml

import daemon
from daemon import TIMEOUT, gureumd  # noqa: F401 (fixture)

GUREUM = os.environ.get("GUREUM_CLI", os.path.join(daemon.BUILD, "src", "cli", "gureum"))
COMPLETION = os.path.join(daemon.REPO, "data", "bash-completion", "gureum")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers and networks need root")

# Instance names are per run: cgroups (/gureum/NAME) are host-wide.
PREFIX = f"nc{os.getpid() % 100000}-"


def check_no_sanitizer_report(stderr):
    for marker in (b"ERROR: AddressSanitizer", b"ERROR: LeakSanitizer", b"runtime error:"):
        assert marker not in stderr, f"sanitizer report from gureum:\n{stderr.decode(errors='replace')}"


def gureum(socket_path, *args):
    r = subprocess.run([GUREUM, "--socket", socket_path] + [str(a) for a in args], capture_output=True,
                       timeout=TIMEOUT)
    check_no_sanitizer_report(r.stderr)
    return r


def one_line(r, code):
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, code, err)
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line on stderr: {err!r}"
    assert err.startswith("gureum"), err
    return err.strip()


# --- usage errors: nothing is sent ----------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["network"], "a subcommand is needed"),
    (["network", "bogus"], 'unknown subcommand "bogus"'),
    (["network", "create"], "a network name is needed"),
    (["network", "create", "a", "b"], 'unexpected argument "b"'),
    (["network", "create", "a", "--subnet"], "option --subnet needs a value"),
    (["network", "create", "a", "--subnet", "10.0.0.0"], "--subnet 10.0.0.0: expected an IPv4 subnet"),
    (["network", "create", "a", "--subnet", "10.0.0.300/24"], "--subnet 10.0.0.300/24: expected an IPv4 subnet"),
    (["network", "create", "a", "--subnet", "10.0.0.0/33"], "--subnet 10.0.0.0/33: expected an IPv4 subnet"),
    (["network", "create", "a", "--subnet", "10.0.0.0/x"], "--subnet 10.0.0.0/x: expected an IPv4 subnet"),
    (["network", "create", "a", "--frobnicate"], "unknown option --frobnicate"),
    (["network", "list", "extra"], 'unexpected argument "extra"'),
    (["network", "list", "--format", "xml"], "--format xml: expected table, json, yaml or csv"),
    (["network", "info"], "a network name is needed"),
    (["network", "info", "a", "b"], 'unexpected argument "b"'),
    (["network", "delete"], "a network name is needed"),
    (["network", "delete", "a", "b"], 'unexpected argument "b"'),
    (["network", "forward"], "add, list or delete is needed"),
    (["network", "forward", "bogus"], 'unknown subcommand "bogus"'),
    (["network", "forward", "add"], "NETWORK HOST_PORT INSTANCE:PORT [tcp|udp] are needed"),
    (["network", "forward", "add", "n1"], "NETWORK HOST_PORT INSTANCE:PORT [tcp|udp] are needed"),
    (["network", "forward", "add", "n1", "8080"], "NETWORK HOST_PORT INSTANCE:PORT [tcp|udp] are needed"),
    (["network", "forward", "add", "n1", "0", "c1:80"], 'HOST_PORT "0": expected a port number from 1 to 65535'),
    (["network", "forward", "add", "n1", "65536", "c1:80"],
     'HOST_PORT "65536": expected a port number from 1 to 65535'),
    (["network", "forward", "add", "n1", "x", "c1:80"], 'HOST_PORT "x": expected a port number from 1 to 65535'),
    (["network", "forward", "add", "n1", "+80", "c1:80"], 'HOST_PORT "+80": expected a port number'),
    (["network", "forward", "add", "n1", " 80", "c1:80"], 'HOST_PORT " 80": expected a port number'),
    (["network", "forward", "add", "n1", "99999999999999999999", "c1:80"], "expected a port number"),
    (["network", "forward", "add", "n1", "-1", "c1:80"], "unknown option -1"),
    (["network", "forward", "add", "n1", "8080", "c1"], '"c1": expected INSTANCE:PORT, such as c1:80'),
    (["network", "forward", "add", "n1", "8080", ":80"], '":80": the instance name before \':\' is missing'),
    (["network", "forward", "add", "n1", "8080", "c1:"], '"c1:": the port after \':\' must be a number'),
    (["network", "forward", "add", "n1", "8080", "c1:0"], '"c1:0": the port after \':\' must be a number'),
    (["network", "forward", "add", "n1", "8080", "c1:65536"], "must be a number from 1 to 65535"),
    (["network", "forward", "add", "n1", "8080", "c1:80:x"], '"c1:80:x": the port after \':\' must be a number'),
    (["network", "forward", "add", "n1", "8080", "c1:80", "sctp"], 'protocol "sctp": expected tcp or udp'),
    (["network", "forward", "add", "n1", "8080", "c1:80", "TCP"], 'protocol "TCP": expected tcp or udp'),
    (["network", "forward", "add", "n1", "8080", "c1:80", "tcp", "x"], 'unexpected argument "x"'),
    (["network", "forward", "list"], "a network name is needed"),
    (["network", "forward", "list", "n1", "x"], 'unexpected argument "x"'),
    (["network", "forward", "list", "n1", "--format", "xml"], "--format xml: expected table, json, yaml or csv"),
    (["network", "forward", "delete"], "NETWORK HOST_PORT [tcp|udp] are needed"),
    (["network", "forward", "delete", "n1"], "NETWORK HOST_PORT [tcp|udp] are needed"),
    (["network", "forward", "delete", "n1", "0"], 'HOST_PORT "0": expected a port number from 1 to 65535'),
    (["network", "forward", "delete", "n1", "65536"], 'HOST_PORT "65536": expected a port number'),
    (["network", "forward", "delete", "n1", "x"], 'HOST_PORT "x": expected a port number'),
    (["network", "forward", "delete", "n1", "80", "icmp"], 'protocol "icmp": expected tcp or udp'),
    (["network", "forward", "delete", "n1", "80", "udp", "x"], 'unexpected argument "x"'),
])
def test_usage_errors(args, message, tmp_path):
    r = gureum(str(tmp_path / "none.sock"), *args)
    err = one_line(r, 2)
    assert message in err, (args, err)
    assert err.startswith("gureum network: ") and err.endswith("(see gureum network --help)"), err


def test_help(tmp_path):
    for args in (["network", "--help"], ["network", "-h"], ["help", "network"], ["network", "forward", "--help"],
                 ["network", "create", "--help"], ["network", "forward", "add", "--help"]):
        r = subprocess.run([GUREUM] + args, capture_output=True, timeout=TIMEOUT)
        assert r.returncode == 0, (args, r.stderr)
        out = r.stdout.decode()
        assert out.startswith("Usage: gureum network "), out
        for word in ("--subnet", "--nat", "--isolated", "forward add NETWORK HOST_PORT INSTANCE:PORT [tcp|udp]",
                     "forward delete NETWORK HOST_PORT [tcp|udp]"):
            assert word in out, (word, out)
    r = subprocess.run([GUREUM, "--help"], capture_output=True, timeout=TIMEOUT)
    assert b"network" in r.stdout


# --- the requests, against a stand-in daemon ------------------------------------------------------

def envelope(metadata):
    return {"type": "sync", "status": "Success", "status_code": 200, "operation": "", "error_code": 0, "error": "",
            "metadata": metadata}


def error_envelope(code, message):
    return {"type": "error", "status": "", "status_code": 0, "operation": "", "error_code": code, "error": message,
            "metadata": None}


NET_A = {"name": "default", "bridge": "gureum0", "subnet": "10.180.0.0/24", "gateway": "10.180.0.1", "nat": True,
         "isolated": False, "created_at": "2026-11-24T05:00:00.000Z",
         "used_by": ["/1.0/instances/c1", "/1.0/instances/c2"], "status": "Created", "status_detail": ""}
NET_B = {"name": "lab", "bridge": "gureum1", "subnet": "10.77.0.0/24", "gateway": "10.77.0.1", "nat": False,
         "isolated": True, "created_at": "2026-11-24T06:00:00.000Z", "used_by": [], "status": "Errored",
         "status_detail": "dnsmasq: failed to bind"}
FWD = [{"protocol": "tcp", "host_port": 8080, "instance": "c1", "port": 80, "address": "10.180.0.2"},
       {"protocol": "udp", "host_port": 5353, "instance": "c2", "port": 53, "address": "10.180.0.3"}]


class StubDaemon:
    """An HTTP server on a unix socket: answers[(METHOD, PATH)] = (status, envelope); every
    request is recorded as (method, path, parsed JSON body or None)."""

    def __init__(self, path):
        self.path = path
        self.answers = {}
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def address_string(self):
                return "unix"

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                stub.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                status, env = stub.answers.get((self.command, self.path)) or stub.answers.get(
                    (self.command, self.path.split("?")[0]),
                    (404, error_envelope(404, f"stub: no answer for {self.path}")))
                data = json.dumps(env).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def run(self, *args):
        self.requests.clear()
        return gureum(self.path, *args)

    def ok(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, (args, r.returncode, r.stderr.decode())
        assert r.stderr == b"", r.stderr
        return r.stdout.decode()


@pytest.fixture
def stub(tmp_path):
    s = StubDaemon(str(tmp_path / "stub.sock"))
    yield s
    s.close()


def table_rows(out):
    """The cells of a bordered table, header first."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]


def test_stub_list_in_every_format(stub):
    stub.answers[("GET", "/1.0/networks?recursion=1")] = (200, envelope([NET_A, NET_B]))
    rows = table_rows(stub.ok("network", "list"))
    assert stub.requests == [("GET", "/1.0/networks?recursion=1", None)]
    assert rows == [["NAME", "BRIDGE", "SUBNET", "NAT", "ISOLATED", "USED BY"],
                    ["default", "gureum0", "10.180.0.0/24", "YES", "NO", "2"],
                    ["lab", "gureum1", "10.77.0.0/24", "NO", "YES", "0"]]
    assert list(csv.reader(io.StringIO(stub.ok("network", "list", "--format", "csv")))) == [
        ["default", "gureum0", "10.180.0.0/24", "true", "false", "2"],
        ["lab", "gureum1", "10.77.0.0/24", "false", "true", "0"]]
    assert json.loads(stub.ok("network", "list", "--format", "json")) == [NET_A, NET_B]
    assert yaml.safe_load(stub.ok("network", "list", "-f", "yaml")) == [NET_A, NET_B]
    stub.answers[("GET", "/1.0/networks?recursion=1")] = (200, envelope([]))
    assert table_rows(stub.ok("network", "list")) == [["NAME", "BRIDGE", "SUBNET", "NAT", "ISOLATED", "USED BY"]]
    assert stub.ok("network", "list", "--format", "csv") == ""
    # Not a list: one line, exit 1.
    stub.answers[("GET", "/1.0/networks?recursion=1")] = (200, envelope({"name": "x"}))
    assert "did not answer with a list" in one_line(stub.run("network", "list"), 1)


def test_stub_create(stub):
    stub.answers[("POST", "/1.0/networks")] = (200, envelope(dict(NET_B, subnet="10.99.0.0/24", nat=True)))
    assert stub.ok("network", "create", "lab") == "Network lab created (10.99.0.0/24)\n"
    assert stub.requests == [("POST", "/1.0/networks", {"name": "lab", "nat": False, "isolated": False})]
    stub.ok("network", "create", "--nat", "lab", "--subnet", "10.77.0.0/24", "--isolated")
    assert stub.requests == [("POST", "/1.0/networks",
                              {"name": "lab", "nat": True, "isolated": True, "subnet": "10.77.0.0/24"})]
    stub.answers[("POST", "/1.0/networks")] = (409, error_envelope(409, "network lab already exists"))
    assert one_line(stub.run("network", "create", "lab"), 1) == "gureum: network lab already exists"
    stub.answers[("POST", "/1.0/networks")] = (400, error_envelope(400, "subnet 10.1.2.3/24: host bits set"))
    assert "host bits" in one_line(stub.run("network", "create", "lab", "--subnet", "10.1.2.3/24"), 1)


def test_stub_info_and_delete(stub):
    stub.answers[("GET", "/1.0/networks/lab")] = (200, envelope(NET_B))
    out = stub.ok("network", "info", "lab")
    assert yaml.safe_load(out) == NET_B
    assert stub.requests == [("GET", "/1.0/networks/lab", None)]
    # A name is one path segment, whatever it holds.
    stub.run("network", "info", "a/b?c")
    assert stub.requests == [("GET", "/1.0/networks/a%2Fb%3Fc", None)]
    assert one_line(stub.run("network", "info", "nope"), 1).startswith("gureum: stub: no answer")

    stub.answers[("DELETE", "/1.0/networks/lab")] = (200, envelope({}))
    assert stub.ok("network", "delete", "lab") == ""
    assert stub.requests == [("DELETE", "/1.0/networks/lab", None)]
    msg = "network default is used by instances c1, c2: delete them or give them another network"
    stub.answers[("DELETE", "/1.0/networks/default")] = (409, error_envelope(409, msg))
    assert one_line(stub.run("network", "delete", "default"), 1) == "gureum: " + msg


def test_stub_forwards(stub):
    stub.answers[("POST", "/1.0/networks/default/forwards")] = (200, envelope(FWD[0]))
    assert stub.ok("network", "forward", "add", "default", "8080", "c1:80") == ""
    assert stub.requests == [("POST", "/1.0/networks/default/forwards",
                              {"protocol": "tcp", "host_port": 8080, "instance": "c1", "port": 80})]
    stub.ok("network", "forward", "add", "default", "65535", "c2:1", "udp")
    assert stub.requests[0][2] == {"protocol": "udp", "host_port": 65535, "instance": "c2", "port": 1}
    # INSTANCE:PORT is split at the last ':' (the daemon judges the name).
    stub.ok("network", "forward", "add", "default", "1", "a:b:22", "tcp")
    assert stub.requests[0][2] == {"protocol": "tcp", "host_port": 1, "instance": "a:b", "port": 22}
    stub.answers[("POST", "/1.0/networks/default/forwards")] = (
        409, error_envelope(409, "tcp port 8080 is forwarded already (network default, to c1:80)"))
    assert "forwarded already" in one_line(stub.run("network", "forward", "add", "default", "8080", "c2:80"), 1)

    stub.answers[("GET", "/1.0/networks/default/forwards")] = (200, envelope(FWD))
    rows = table_rows(stub.ok("network", "forward", "list", "default"))
    assert stub.requests == [("GET", "/1.0/networks/default/forwards", None)]
    assert rows == [["PROTOCOL", "HOST PORT", "INSTANCE", "PORT", "ADDRESS"],
                    ["tcp", "8080", "c1", "80", "10.180.0.2"],
                    ["udp", "5353", "c2", "53", "10.180.0.3"]]
    assert list(csv.reader(io.StringIO(stub.ok("network", "forward", "list", "default", "--format", "csv")))) == [
        ["tcp", "8080", "c1", "80", "10.180.0.2"], ["udp", "5353", "c2", "53", "10.180.0.3"]]
    assert json.loads(stub.ok("network", "forward", "list", "--format", "json", "default")) == FWD
    assert yaml.safe_load(stub.ok("network", "forward", "list", "default", "--format", "yaml")) == FWD

    stub.answers[("DELETE", "/1.0/networks/default/forwards/tcp/8080")] = (200, envelope({}))
    assert stub.ok("network", "forward", "delete", "default", "8080") == ""
    assert stub.requests == [("DELETE", "/1.0/networks/default/forwards/tcp/8080", None)]
    stub.run("network", "forward", "delete", "default", "5353", "udp")
    assert stub.requests == [("DELETE", "/1.0/networks/default/forwards/udp/5353", None)]
    # Leading zeros are still decimal: the path has the number.
    stub.ok("network", "forward", "delete", "default", "08080", "tcp")
    assert stub.requests == [("DELETE", "/1.0/networks/default/forwards/tcp/8080", None)]
    assert "stub: no answer" in one_line(stub.run("network", "forward", "delete", "default", "5353", "udp"), 1)


def test_stub_async_answers_are_waited_for(stub):
    """The routes are sync by the contract; should one answer async, its operation counts."""
    op = {"id": "1", "class": "task", "description": "Deleting network", "created_at": "", "updated_at": "",
          "status": "Success", "status_code": 200, "resources": {}, "metadata": {}, "may_cancel": False, "err": ""}
    stub.answers[("DELETE", "/1.0/networks/lab")] = (202, {
        "type": "async", "status": "Operation created", "status_code": 100, "operation": "/1.0/operations/1",
        "error_code": 0, "error": "", "metadata": op})
    stub.answers[("GET", "/1.0/operations/1/wait")] = (200, envelope(op))
    assert stub.ok("network", "delete", "lab") == ""
    assert [r[:2] for r in stub.requests] == [("DELETE", "/1.0/networks/lab"),
                                             ("GET", "/1.0/operations/1/wait?timeout=15")]
    stub.answers[("GET", "/1.0/operations/1/wait")] = (200, envelope(
        dict(op, status="Failure", status_code=400, err="removing bridge gureum1: Device or resource busy")))
    assert one_line(stub.run("network", "delete", "lab"), 1) == \
        "gureum: removing bridge gureum1: Device or resource busy"


def test_stub_global_options_after_the_subcommand(stub, tmp_path):
    stub.answers[("GET", "/1.0/networks/lab")] = (200, envelope(NET_B))
    r = subprocess.run([GUREUM, "--socket", str(tmp_path / "none.sock"), "network", "info", "lab",
                        "--socket", stub.path], capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout) == NET_B


# --- the real daemon ------------------------------------------------------------------------------

class Cli:
    def __init__(self, d):
        self.d = d

    def run(self, *args):
        return gureum(self.d.socket_path, *args)

    def ok(self, *args):
        r = self.run(*args)
        assert r.returncode == 0, f"gureum {' '.join(map(str, args))}: {r.returncode}: {r.stderr.decode()}"
        return r.stdout.decode()

    def fails(self, *args, code=1):
        return one_line(self.run(*args), code)

    def networks(self):
        return {n["name"]: n for n in json.loads(self.ok("network", "list", "--format", "json"))}

    def instances(self):
        return {i["name"]: i for i in json.loads(self.ok("list", "--format", "json"))}


@pytest.fixture
def cli(gureumd):
    c = Cli(gureumd)
    before = set(c.networks())
    yield c
    # Instances first (a network in use cannot go), then the networks the test made.
    for name in list(c.instances()):
        c.ok("delete", "--force", name)
    for name in set(c.networks()) - before:
        c.ok("network", "delete", name)


@needs_root
def test_create_list_info_delete(cli):
    assert cli.ok("network", "create", "n1", "--subnet", "10.77.0.0/24", "--nat") == \
        "Network n1 created (10.77.0.0/24)\n"

    nets = cli.networks()
    n1 = nets["n1"]
    assert n1["name"] == "n1" and n1["subnet"] == "10.77.0.0/24" and n1["gateway"] == "10.77.0.1"
    assert n1["nat"] is True and n1["isolated"] is False
    assert n1["used_by"] == [] and n1["status"] == "Created" and n1["bridge"]

    rows = table_rows(cli.ok("network", "list"))
    assert rows[0] == ["NAME", "BRIDGE", "SUBNET", "NAT", "ISOLATED", "USED BY"]
    assert ["n1", n1["bridge"], "10.77.0.0/24", "YES", "NO", "0"] in rows[1:]
    assert len(rows) == 1 + len(nets)
    assert ["n1", n1["bridge"], "10.77.0.0/24", "true", "false", "0"] in \
        list(csv.reader(io.StringIO(cli.ok("network", "list", "--format", "csv"))))
    assert yaml.safe_load(cli.ok("network", "list", "--format", "yaml")) == \
        json.loads(cli.ok("network", "list", "--format", "json"))

    info = yaml.safe_load(cli.ok("network", "info", "n1"))
    assert info == n1

    # The name is taken: the daemon's 409, one line, exit 1; nothing changed.
    err = cli.fails("network", "create", "n1", "--subnet", "10.78.0.0/24")
    assert "n1" in err
    assert cli.networks()["n1"] == n1

    # A subnet of its own is chosen when none is given, and it overlaps no other network.
    out = cli.ok("network", "create", "n2", "--isolated")
    n2 = cli.networks()["n2"]
    assert out == f"Network n2 created ({n2['subnet']})\n"
    assert n2["isolated"] is True and n2["nat"] is False
    subnets = [ipaddress.ip_network(n["subnet"]) for n in cli.networks().values()]
    assert not any(a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1:]), subnets

    # A subnet that overlaps another network's is refused.
    assert "10.77.0." in cli.fails("network", "create", "n3", "--subnet", "10.77.0.128/25")
    assert "n3" not in cli.networks()

    cli.ok("network", "delete", "n1")
    cli.ok("network", "delete", "n2")
    nets = cli.networks()
    assert "n1" not in nets and "n2" not in nets
    assert "n1" in cli.fails("network", "info", "n1")
    assert "n1" in cli.fails("network", "delete", "n1")


@needs_root
def test_forwards_and_delete_while_used(cli):
    cli.ok("network", "create", "n1", "--subnet", "10.77.0.0/24")
    inst = PREFIX + "web"
    # Created, not started: the forward needs its address, which it has from its creation.
    assert cli.ok("launch", "-e", "busybox", inst, "-c", "network=n1", "-c", "ipv4.address=10.77.0.10") == inst + "\n"
    net = cli.instances()[inst]["network"]
    assert net["name"] == "n1" and net["ipv4"] == "10.77.0.10"
    assert cli.networks()["n1"]["used_by"] == [f"/1.0/instances/{inst}"]
    assert table_rows(cli.ok("network", "list"))[1:].count(
        ["n1", cli.networks()["n1"]["bridge"], "10.77.0.0/24", "NO", "NO", "1"]) == 1

    assert cli.ok("network", "forward", "add", "n1", "8080", f"{inst}:80") == ""
    cli.ok("network", "forward", "add", "n1", "8080", f"{inst}:8080", "udp")
    cli.ok("network", "forward", "add", "n1", "53", f"{inst}:5353", "udp")
    # The same protocol and host port again: refused, naming where it goes already.
    err = cli.fails("network", "forward", "add", "n1", "8080", f"{inst}:81")
    assert "8080" in err
    # Not an instance of this network.
    assert "nope" in cli.fails("network", "forward", "add", "n1", "9090", "nope:80")

    fwd = json.loads(cli.ok("network", "forward", "list", "n1", "--format", "json"))
    assert fwd == [
        {"protocol": "tcp", "host_port": 8080, "instance": inst, "port": 80, "address": "10.77.0.10"},
        {"protocol": "udp", "host_port": 53, "instance": inst, "port": 5353, "address": "10.77.0.10"},
        {"protocol": "udp", "host_port": 8080, "instance": inst, "port": 8080, "address": "10.77.0.10"},
    ]
    rows = table_rows(cli.ok("network", "forward", "list", "n1"))
    assert rows == [["PROTOCOL", "HOST PORT", "INSTANCE", "PORT", "ADDRESS"],
                    ["tcp", "8080", inst, "80", "10.77.0.10"],
                    ["udp", "53", inst, "5353", "10.77.0.10"],
                    ["udp", "8080", inst, "8080", "10.77.0.10"]]

    cli.ok("network", "forward", "delete", "n1", "8080")          # tcp by default
    cli.ok("network", "forward", "delete", "n1", "53", "udp")
    assert [(f["protocol"], f["host_port"]) for f in
            json.loads(cli.ok("network", "forward", "list", "n1", "--format", "json"))] == [("udp", 8080)]
    assert "8080" in cli.fails("network", "forward", "delete", "n1", "8080", "tcp")

    # In use: refused, naming the instance.
    assert inst in cli.fails("network", "delete", "n1")
    assert "n1" in cli.networks()

    cli.ok("delete", inst)
    cli.ok("network", "delete", "n1")
    assert "n1" not in cli.networks()
    assert "n1" in cli.fails("network", "forward", "list", "n1")


@needs_root
def test_bash_completion(cli):
    cli.ok("network", "create", "n1", "--subnet", "10.77.0.0/24")
    script = f"""
source {COMPLETION}
complete_line() {{
    COMP_LINE="$1"
    read -ra COMP_WORDS <<< "$COMP_LINE"
    [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
    COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=()
    _gureum
    echo "${{COMPREPLY[*]}}"
}}
complete_line "gureum network "
complete_line "gureum network info n"
complete_line "gureum network forward "
complete_line "gureum network forward list n"
complete_line "gureum network forward add n1 8080 c1:80 "
complete_line "gureum network list --format "
complete_line "gureum network create x --"
"""
    path = os.path.dirname(GUREUM) + ":" + os.environ.get("PATH", "")
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, timeout=TIMEOUT,
                       env=dict(os.environ, PATH=path, GUREUM_SOCKET=cli.d.socket_path))
    assert r.returncode == 0, r.stderr
    lines = [sorted(line.split()) for line in r.stdout.decode().splitlines()]
    assert lines[0] == ["create", "delete", "forward", "info", "list"]
    assert "n1" in lines[1]
    assert lines[2] == ["add", "delete", "list"]
    assert "n1" in lines[3]
    assert lines[4] == ["tcp", "udp"]
    assert lines[5] == ["csv", "json", "table", "yaml"]
    assert {"--subnet", "--nat", "--isolated"} <= set(lines[6])
