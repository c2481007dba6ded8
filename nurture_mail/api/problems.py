"""Errors of the API as ``application/problem+json`` (RFC 9457), naming the offending field.

Every 4xx/5xx under ``/api`` has the same shape::

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "email: Not a valid email address.",
     "errors": [{"field": "email", "message": "Not a valid email address."}]}

``type`` is ``about:blank`` (the status code says it all) except for our own problem kinds,
which get a documented URI such as ``/api/problems/idempotency-key-reused``.
"""
from __future__ import annotations

import http
from collections.abc import Iterable, Mapping
from typing import Any

import marshmallow as ma
from flask import Response, json, request
from werkzeug.exceptions import HTTPException

__all__ = ["PROBLEM_JSON", "ApiProblem", "ErrorItemSchema", "ProblemSchema", "flatten_errors", "problem_response"]

PROBLEM_JSON = "application/problem+json"


class ErrorItemSchema(ma.Schema):
    field = ma.fields.String(allow_none=True, required=True,
                             metadata={"description": "The offending field (dotted path), or null"})
    message = ma.fields.String(required=True)


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, with the field errors as a list."""

    type = ma.fields.String(required=True, metadata={"example": "about:blank"})
    title = ma.fields.String(required=True, metadata={"example": "Unprocessable Content"})
    status = ma.fields.Integer(required=True, metadata={"example": 422})
    detail = ma.fields.String(required=True)
    instance = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(ErrorItemSchema), required=True)


class ApiProblem(HTTPException):
    """Raise from a route: ``raise ApiProblem(409, "lead was erased", field="email")``."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 errors: list[dict[str, Any]] | None = None, type_: str = "about:blank",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(description=detail)
        self.code = status
        self.detail = detail
        self.errors = errors if errors is not None else [{"field": field, "message": detail}]
        self.type = type_
        self.extra_headers = dict(headers or {})


def flatten_errors(messages: Any, prefix: str = "") -> list[dict[str, Any]]:
    """marshmallow/webargs ``{"json": {"a": {"0": ["bad"]}}}`` -> ``[{"field": "a.0", …}]``."""
    if isinstance(messages, Mapping):
        items: list[dict[str, Any]] = []
        for key, value in messages.items():
            key = str(key)
            if not prefix and key in ("json", "query", "form", "files", "headers", "view_args", "path"):
                items.extend(flatten_errors(value, ""))  # the location is not part of the field name
                continue
            name = key if key != "_schema" else prefix.rstrip(".")
            items.extend(flatten_errors(value, f"{prefix}{name}." if name else prefix))
        return items
    if isinstance(messages, (list, tuple)):
        if all(isinstance(m, str) for m in messages):
            field = prefix.rstrip(".") or None
            return [{"field": field, "message": m} for m in messages]
        items = []
        for m in messages:
            items.extend(flatten_errors(m, prefix))
        return items
    return [{"field": prefix.rstrip(".") or None, "message": str(messages)}]


def _detail(errors: Iterable[Mapping[str, Any]], fallback: str) -> str:
    parts = [f"{e['field']}: {e['message']}" if e.get("field") else str(e["message"]) for e in errors]
    return "; ".join(parts) or fallback


def problem_response(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
                     type_: str = "about:blank", headers: Mapping[str, str] | None = None) -> Response:
    try:
        title = http.HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"type": type_, "title": title, "status": status, "detail": detail,
            "instance": request.path, "errors": errors or []}
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def from_http_exception(error: HTTPException) -> Response:
    """Any HTTPException raised under /api (abort, webargs 422, routing 404/405) as a problem."""
    status = error.code or 500
    headers: dict[str, str] = {}
    if isinstance(error, ApiProblem):
        return problem_response(status, error.detail, error.errors, error.type, error.extra_headers)
    data = getattr(error, "data", None) or {}
    errors: list[dict[str, Any]] = []
    if "errors" in data or "messages" in data:
        errors = flatten_errors(data.get("errors", data.get("messages")))
    if data.get("headers"):
        headers.update(data["headers"])
    if status == 405 and error.get_response().headers.get("Allow"):
        headers["Allow"] = error.get_response().headers["Allow"]
    if status == 429:
        retry = error.get_response().headers.get("Retry-After")
        if retry:
            headers["Retry-After"] = retry
    description = data.get("message") or error.description or ""
    if status == 404 and not data:
        description = f"nothing at {request.path} (see /api/openapi.json for the API's routes)"
    if status == 405 and not data:
        description = f"{request.method} is not allowed on {request.path}"
    detail = _detail(errors, description) if status == 422 and errors else description
    return problem_response(status, detail, errors, headers=headers)
