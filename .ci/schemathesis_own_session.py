"""Schemathesis hooks for the run of `.ci/schemathesis` that ends sessions: a session of its own
for every request.

Loaded only for the operations that end the caller's session (logout, revoking a session,
deleting the account): each request gets a fresh login of a throwaway account, so one request
ending its session never turns the rest of the run into 401s.
"""

import os

import requests
import schemathesis

from schemathesis_hooks import filter_body  # noqa: F401 (the rules of every run apply here too)

BASE = os.environ["CLOUDHEED_URL"]
ACCOUNT = {
    "email": os.environ["CLOUDHEED_THROWAWAY_EMAIL"],
    "password": os.environ["CLOUDHEED_THROWAWAY_PASSWORD"],
}


@schemathesis.auth(refresh_interval=None)
class FreshSession:
    def get(self, case, ctx):
        r = requests.post(f"{BASE}/v1/auth/login", json=ACCOUNT, timeout=30)
        if r.status_code == 401:
            # A case deleted the account: open it again under the same address.
            r = requests.post(
                f"{BASE}/v1/auth/register", json={**ACCOUNT, "name": "Throwaway"}, timeout=30
            )
        r.raise_for_status()
        return r.json()["token"]

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
