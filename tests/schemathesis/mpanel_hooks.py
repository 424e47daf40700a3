"""schemathesis hooks for mPanel (loaded through SCHEMATHESIS_HOOKS).

X-Tenant is for SUPER_ADMIN only: as the ADMIN the fuzzer runs as, any
generated value is a 403 before the handler, so it is left out.

The two webhooks only read a body whose Standard Webhooks signature checks
out, so a generated request would stop at 401 and never reach the parsers
behind it. This signs every generated webhook body with the stack's secret
(MARKETING_WEBHOOK_SECRET) and points it at the fuzz tenant and its price,
so the fuzzer exercises order intake and billing events themselves.
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis
from schemathesis.core import NotSet

WEBHOOKS = {("POST", "/api/orders"), ("POST", "/api/subscriptions/events")}
TENANT = os.environ.get("MPANEL_FUZZ_TENANT", "fuzz")
PRICE = os.environ.get("MPANEL_FUZZ_PRICE", "starter-monthly")


def _key() -> bytes:
    secret = os.environ["MARKETING_WEBHOOK_SECRET"]
    return base64.b64decode(secret.removeprefix("whsec_"))


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.headers and any(name.lower() == "x-tenant" for name in case.headers):
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "x-tenant"}
    if (case.operation.method.upper(), case.operation.path) not in WEBHOOKS or isinstance(case.body, NotSet):
        return
    body = case.body
    if isinstance(body, dict):
        if isinstance(body.get("tenantSlug"), str):
            body["tenantSlug"] = TENANT
        if isinstance(body.get("priceSlug"), str):
            body["priceSlug"] = PRICE
    try:
        raw = json.dumps(body).encode()
    except (TypeError, ValueError):
        return
    webhook_id = "msg_" + uuid.uuid4().hex
    timestamp = str(int(time.time()))
    mac = hmac.new(_key(), f"{webhook_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    headers = dict(case.headers or {})
    headers.update(
        {
            "webhook-id": webhook_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
            "content-type": "application/json",
        }
    )
    case.headers = headers
    kwargs["data"] = raw
