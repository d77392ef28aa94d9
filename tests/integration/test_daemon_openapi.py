"""docs/api/openapi.yaml describes exactly the routes gureumd serves.

The route tables are printed by the daemon itself (`gureumd --print-routes`: one "METHOD PATTERN"
line per route of instance_routes and core_routes), so a route added to the C tables without
its documentation (or documented but not served) fails here.
"""
import os
import re

import yaml

from daemon import REPO, run_gureumd

SPEC = os.path.join(REPO, "docs", "api", "openapi.yaml")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def served_routes():
    r = run_gureumd(["--print-routes"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    routes = set()
    for line in r.stdout.splitlines():
        method, pattern = line.split()
        routes.add((method.upper(), pattern))
    assert routes, "no routes printed"
    return routes


def load_spec():
    with open(SPEC) as f:
        return yaml.safe_load(f)


def documented_routes(spec):
    routes = set()
    for path, item in spec["paths"].items():
        pattern = re.sub(r"\{[^}/]+\}", "{}", path)
        for key in item:
            if key in METHODS:
                routes.add((key.upper(), pattern))
    return routes


def test_every_served_route_is_documented_and_nothing_else():
    served, documented = served_routes(), documented_routes(load_spec())
    missing = sorted(served - documented)
    extra = sorted(documented - served)
    assert not missing, f"routes served but not in {SPEC}: {missing}"
    assert not extra, f"routes in {SPEC} that gureumd does not serve: {extra}"


def test_spec_is_openapi_3_0_with_resolvable_refs():
    spec = load_spec()
    assert str(spec["openapi"]).startswith("3.0")
    for name in ("Envelope", "Operation", "Instance", "InstanceState", "ExecRequest", "Error", "Async", "Sync"):
        assert name in spec["components"]["schemas"], name

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    assert v.startswith("#/"), v
                    target = spec
                    for part in v[2:].split("/"):
                        assert part in target, f"unresolvable $ref {v}"
                        target = target[part]
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(spec)
    # every path parameter is declared
    for path, item in spec["paths"].items():
        for name in re.findall(r"\{([^}/]+)\}", path):
            params = list(item.get("parameters", []))
            for key in item:
                if key in METHODS:
                    params += item[key].get("parameters", [])
            resolved = []
            for p in params:
                if "$ref" in p:
                    p = spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
                resolved.append(p)
            assert any(p["name"] == name and p["in"] == "path" for p in resolved), (path, name)
