#!/usr/bin/env python3
"""The service project, the service users and the catalog of the test OpenStack, over Keystone's
REST API in one process (the `openstack` CLI took ~35 calls of 2-7 s each on a busy 2-core
machine). Idempotent: what exists is left as it is.
usage: keystone-catalog.py PASSWORD   (admin's password is PASSWORD too)
also:  keystone-catalog.py PASSWORD --get URL   (GET with a token: the Neutron warm-up)
"""
import json
import sys
import urllib.error
import urllib.request

KS = "http://127.0.0.1:5000/v3"
PW = sys.argv[1]


def call(method, url, token=None, body=None, ok=(200, 201, 204)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Connection", "close")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, dict(r.headers), (json.loads(text) if text.strip() else None)
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, dict(e.headers), None
        raise SystemExit(f"{method} {url}: HTTP {e.code}: {e.read().decode()[:300]}")


def token():
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": PW}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    _, headers, _ = call("POST", f"{KS}/auth/tokens", body=body)
    return {k.lower(): v for k, v in headers.items()}["x-subject-token"]


T = token()
if len(sys.argv) > 3 and sys.argv[2] == "--get":
    call("GET", sys.argv[3], T)
    sys.exit(0)


def find_or_create(collection, query, create_body, key):
    _, _, found = call("GET", f"{KS}/{collection}?{query}", T)
    if found[collection]:
        return found[collection][0]["id"]
    _, _, made = call("POST", f"{KS}/{collection}", T, {key: create_body})
    return made[key]["id"]


project = find_or_create("projects", "name=service&domain_id=default", {"name": "service", "domain_id": "default"}, "project")
roles = {r["name"]: r["id"] for r in call("GET", f"{KS}/roles", T)[2]["roles"]}
for user in ("glance", "placement", "nova", "neutron"):
    uid = find_or_create("users", f"name={user}&domain_id=default", {"name": user, "domain_id": "default", "password": PW}, "user")
    call("PUT", f"{KS}/projects/{project}/users/{uid}/roles/{roles['admin']}", T)
    if user == "nova" and "service" in roles:
        call("PUT", f"{KS}/projects/{project}/users/{uid}/roles/{roles['service']}", T)

for stype, name, url in (("image", "glance", "http://127.0.0.1:9292"), ("placement", "placement", "http://127.0.0.1:8778"),
                         ("compute", "nova", "http://127.0.0.1:8774/v2.1"), ("network", "neutron", "http://127.0.0.1:9696")):
    sid = find_or_create("services", f"type={stype}", {"type": stype, "name": name}, "service")
    for interface in ("public", "internal", "admin"):
        _, _, eps = call("GET", f"{KS}/endpoints?service_id={sid}&interface={interface}", T)
        if not eps["endpoints"]:
            call("POST", f"{KS}/endpoints", T, {"endpoint": {"service_id": sid, "interface": interface, "url": url, "region_id": "RegionOne"}})
print("keystone: project service, 4 service users, 4 services with 3 endpoints each")
