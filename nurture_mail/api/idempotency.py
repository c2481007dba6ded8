"""``Idempotency-Key`` on POST: a retried request gets the first response, not a second effect.

The first POST with a key stores a fingerprint of the request (method, path, body) in Redis
with a short "in flight" marker, and then the response (status, headers, body) for
``IDEMPOTENCY_TTL_SECONDS``. A later POST by the same user with the same key:

- same fingerprint, response stored: that response again, with ``Idempotent-Replayed: true``;
- same fingerprint, first one still running: 409 (retry later);
- a different request: 422, the key was already used for something else.

Responses of 5xx are not stored (the key is released), so a retry after a crash runs again.
Keys are per user: two users cannot collide or read each other's responses. A stored response
about a lead is indexed under the lead (``nurture:idempotency:lead:<id>``) so that erasing
the lead deletes it (``leads.service.erase_lead``): a replay after a GDPR erasure must not return the person's data.
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import partial
from typing import Any

from flask import Response, g, request

from .. import services
from ..leads.service import STORED_RESPONSES_INDEX
from .problems import ApiProblem

__all__ = ["HEADER", "begin", "finish", "fingerprint"]

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: How long a first request may run before a retry with its key may run again (uploads of
#: up to 50 MB are read, hashed and stored within the request).
IN_FLIGHT_SECONDS = 600
_PREFIX = "nurture:idempotency:"
_LEAD_INDEX = STORED_RESPONSES_INDEX  # erasing the lead deletes what is indexed here
_CHUNK = 1024 * 1024
_STORED_HEADERS = ("Content-Type", "Location")


def fingerprint() -> str:
    """What makes two requests "the same": method, path, query, and the body's content."""
    digest = hashlib.sha256(f"{request.method} {request.full_path}\n".encode())
    if request.mimetype == "multipart/form-data":
        for key, value in sorted(request.form.items(multi=True)):
            digest.update(f"form {key}={value}\n".encode())
        for key, storage in sorted(request.files.items(multi=True), key=lambda item: item[0]):
            content = hashlib.sha256()
            for chunk in iter(partial(storage.stream.read, _CHUNK), b""):
                content.update(chunk)
            storage.stream.seek(0)
            digest.update(f"file {key}={storage.filename}:".encode() + content.digest())
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _redis_key(key: str) -> str:
    user = g.api_user.id
    return f"{_PREFIX}{user}:{hashlib.sha256(key.encode()).hexdigest()}"


def begin() -> Response | None:
    """Before a POST: replay a stored response, refuse a conflicting one, or reserve the key."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise ApiProblem(422, f"must be 1 to {MAX_KEY_LENGTH} characters", field=HEADER)
    svc = services()
    redis_key = _redis_key(key)
    mark = fingerprint()
    pending = json.dumps({"fingerprint": mark, "state": "pending"})
    if svc.redis.set(redis_key, pending, nx=True, ex=IN_FLIGHT_SECONDS):
        g.idempotency = (redis_key, mark)
        return None
    stored = svc.redis.get(redis_key)
    if stored is None:  # expired between the two calls: treat as new, unless another retry won the race
        if svc.redis.set(redis_key, pending, nx=True, ex=IN_FLIGHT_SECONDS):
            g.idempotency = (redis_key, mark)
            return None
        stored = svc.redis.get(redis_key) or pending
    record: dict[str, Any] = json.loads(stored)  # type: ignore[arg-type]  # bytes from a sync client
    if record["fingerprint"] != mark:
        raise ApiProblem(422, "this Idempotency-Key was already used for a different request "
                              "(another path or body); use a new key", field=HEADER,
                         type_="/api/problems/idempotency-key-reused")
    if record["state"] == "pending":
        raise ApiProblem(409, "a request with this Idempotency-Key is still being processed; retry shortly",
                         field=HEADER, headers={"Retry-After": "1"},
                         type_="/api/problems/idempotency-key-in-flight")
    response = Response(base64.b64decode(record["body"]), status=record["status"])
    for name, value in record["headers"]:
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def finish(response: Response) -> Response:
    """After the POST: keep its response for the key's lifetime (or release the key on 5xx)."""
    reserved = g.pop("idempotency", None)
    if reserved is None:
        return response
    redis_key, mark = reserved
    svc = services()
    if response.status_code >= 500 or response.direct_passthrough:
        svc.redis.delete(redis_key)
        return response
    record = {
        "fingerprint": mark,
        "state": "done",
        "status": response.status_code,
        "headers": [(k, v) for k, v in response.headers.items() if k in _STORED_HEADERS],
        "body": base64.b64encode(response.get_data()).decode(),
    }
    ttl = svc.config.idempotency_ttl_seconds
    svc.redis.set(redis_key, json.dumps(record), ex=ttl)
    for lead_id in _leads_of(response):
        index = f"{_LEAD_INDEX}{lead_id}"
        svc.redis.sadd(index, redis_key)
        svc.redis.expire(index, ttl)
    return response


def _leads_of(response: Response) -> set[int]:
    """The leads whose data this response carries (path ``lead_id``, body ``lead_id``, a lead's ``id``)."""
    leads: set[int] = set()
    path_lead = (request.view_args or {}).get("lead_id")
    if isinstance(path_lead, int):
        leads.add(path_lead)
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return leads
    if isinstance(body, dict):
        if isinstance(body.get("lead_id"), int):
            leads.add(body["lead_id"])
        if request.path.startswith("/api/v1/leads") and isinstance(body.get("id"), int):
            leads.add(body["id"])
    return leads


def release(_error: BaseException | None = None) -> None:
    """Teardown: a request that ended without a response (an exception) frees its key."""
    reserved = g.pop("idempotency", None)
    if reserved is not None:
        services().redis.delete(reserved[0])
