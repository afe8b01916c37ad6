"""scim2-tester (the python-scim project's SCIM 2.0 conformance checker) against a
running Warden (driven by crates/warden-server/tests/python_clients.rs, which creates
the organization and a directory key and passes them as JSON on stdin).

Runs every check scim2-tester has (discovery, CRUD, attributes, PATCH add / replace /
remove on every attribute of every schema Warden publishes), prints each result that is
not a success, then one summary line `scim2-tester: N checks, SUCCESS=.., ERROR=..`.
Exits non-zero if any check errs or none ran.
"""

import json
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

cfg = json.load(sys.stdin)
http = Client(
    base_url=cfg["base"],
    headers={"Authorization": f"Bearer {cfg['token']}"},
    timeout=30,
)
client = SyncSCIMClient(http)
client.discover()
results = check_server(client)
counts = {}
for r in results:
    counts[r.status.name] = counts.get(r.status.name, 0) + 1
    if r.status != Status.SUCCESS:
        print(f"{r.status.name}: {r.title} [{getattr(r, 'resource_type', None)}] {r.reason}")
summary = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
print(f"scim2-tester: {len(results)} checks, {summary}")
failed = counts.get("ERROR", 0) + counts.get("CRITICAL", 0)
sys.exit(1 if failed or not results else 0)
