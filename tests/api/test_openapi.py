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


def _refs(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)
    return found


def test_document_is_valid_openapi_3(sqlite_api: ApiPlatform) -> None:
    """Structural OpenAPI 3.0 checks (no validator is installed): parameter locations, request
    bodies, resolvable $refs; the CSV upload is one multipart/form-data requestBody."""
    spec = sqlite_api.client.get("/api/openapi.json").get_json()
    for ref in _refs(spec, []):
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            assert part in node, ref
            node = node[part]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method == "parameters":
                continue
            assert method in ("get", "post", "patch", "put", "delete"), (path, method)
            names = set()
            for parameter in op.get("parameters", []):
                if "$ref" in parameter:
                    continue
                assert parameter["in"] in {"query", "header", "path", "cookie"}, (path, method, parameter)
                assert parameter.get("name") and "schema" in parameter, (path, method, parameter)
                if parameter["in"] == "path":
                    assert parameter["required"] is True, (path, parameter)
                assert (parameter["in"], parameter["name"]) not in names, (path, method, parameter)
                names.add((parameter["in"], parameter["name"]))
            if "requestBody" in op:
                assert op["requestBody"]["content"], (path, method)
            for status in op["responses"]:
                assert status == "default" or status.isdigit(), (path, method, status)
    upload = spec["paths"]["/api/v1/imports"]["post"]
    body = upload["requestBody"]["content"]
    assert list(body) == ["multipart/form-data"]
    schema = body["multipart/form-data"]["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert {"file", "lead_source", "campaign", "mapping"} <= set(schema["properties"])
    assert schema["properties"]["file"]["format"] == "binary" and "file" in schema["required"]
    for action in ("pause", "resume", "exit"):
        op = spec["paths"][f"/api/v1/enrollments/{{enrollment_id}}/{action}"]["post"]
        assert op["requestBody"]["required"] is False, action


def test_upload_with_options_in_one_multipart_body(sqlite_api: ApiPlatform) -> None:
    import io

    data = b"email\nmulti@example.com\n"
    response = sqlite_api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(data), "m.csv"),
                                                                "lead_source": "fair", "check_deliverability": "false"},
                               content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["lead_source"] == "fair"
    unknown = sqlite_api.call("POST", "/api/v1/imports", data={"file": (io.BytesIO(data), "m.csv"), "colour": "red"},
                              content_type="multipart/form-data")
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "colour"


def test_writes_document_their_headers_and_conflict_statuses(sqlite_api: ApiPlatform) -> None:
    spec = sqlite_api.client.get("/api/openapi.json").get_json()
    create = spec["paths"]["/api/v1/leads"]["post"]["responses"]
    assert {"Location", "Idempotent-Replayed", "X-RateLimit-Remaining"} <= set(create["201"]["headers"])
    for path, method in (("/api/v1/leads", "post"), ("/api/v1/leads/{lead_id}", "patch"),
                         ("/api/v1/imports", "post")):
        responses = spec["paths"][path][method]["responses"]
        assert {"409", "413", "429"} <= set(responses), (path, method)
        assert "Retry-After" in responses["429"]["headers"]
