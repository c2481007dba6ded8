"""The OpenAPI document: served without a token, with the bearer scheme and problem responses."""
from __future__ import annotations

from .conftest import ApiPlatform

PROBLEM = "application/problem+json"


def test_document_declares_security_and_problems(sqlite_api: ApiPlatform) -> None:
    response = sqlite_api.client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert spec["security"] == [{"bearerAuth": []}]
    problem = spec["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {"type", "title", "status", "detail", "errors"}
    assert PROBLEM in spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert PROBLEM in spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()
                  if method in ("get", "post", "patch")]
    assert len(operations) >= 20
    for path, method, op in operations:
        assert path.startswith("/api/v1/"), path
        for status in ("401", "403"):
            assert PROBLEM in op["responses"][status]["content"], (path, method, status)
        assert "default" in op["responses"]
        if method == "post":
            assert "Idempotency-Key" in [p["name"] for p in op.get("parameters", [])], path
    # the ESP webhook has its own HMAC authentication and is not a token route
    assert "/api/v1/webhooks/events" not in spec["paths"]


def test_validation_error_matches_the_documented_shape(sqlite_api: ApiPlatform) -> None:
    problem = sqlite_api.call("POST", "/api/v1/leads", json={"email": "a@example.com", "employees": "x"}).get_json()
    assert problem["errors"] == [{"field": "employees", "message": "Not a valid integer."}]
    assert problem["detail"] == "employees: Not a valid integer."
