"""Idempotency-Key, rate limits, and problem+json for every error under /api."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from nurture_mail.models import Lead

from .conftest import ApiPlatform, build_platform


def _lead_count(api: ApiPlatform) -> int:
    with api.svc.db.session() as session:
        return session.scalar(select(func.count()).select_from(Lead))


def test_same_key_same_body_replays_the_first_response(api: ApiPlatform) -> None:
    headers = {"Idempotency-Key": "create-ana-1"}
    body = {"email": "ana@example.com", "first_name": "Ana"}
    first = api.call("POST", "/api/v1/leads", headers=headers, json=body)
    assert first.status_code == 201
    second = api.call("POST", "/api/v1/leads", headers=headers, json=body)
    assert second.status_code == 201  # the stored response, not "updated"
    assert second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert _lead_count(api) == 1
    # without a key the same body is an ordinary upsert
    assert api.call("POST", "/api/v1/leads", json=body).get_json()["outcome"] == "unchanged"


def test_same_key_other_body_is_refused(api: ApiPlatform) -> None:
    headers = {"Idempotency-Key": "k-42"}
    assert api.call("POST", "/api/v1/leads", headers=headers, json={"email": "one@example.com"}).status_code == 201
    reused = api.call("POST", "/api/v1/leads", headers=headers, json={"email": "two@example.com"})
    assert reused.status_code == 422
    problem = reused.get_json()
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert problem["type"].endswith("idempotency-key-reused")
    assert _lead_count(api) == 1
    # keys are per user: another user's identical key is a different key
    other = api.call("POST", "/api/v1/leads", role="marketer", headers=headers, json={"email": "two@example.com"})
    assert other.status_code == 201


def test_key_in_flight_is_a_conflict_and_keys_expire(sqlite_api: ApiPlatform) -> None:
    api = sqlite_api
    from nurture_mail.api import idempotency

    with api.app.test_request_context("/api/v1/leads", method="POST", json={"email": "x@example.com"},
                                      headers={"Idempotency-Key": "busy"}):
        from flask import g

        from nurture_mail.api.security import ApiUser
        from nurture_mail.models import Role

        g.api_user = ApiUser(1, "admin@northwind.example", Role.admin)
        assert idempotency.begin() is None  # reserved, as a request still running would have it
        g.pop("idempotency")  # ... and still running: its teardown must not release the key here
    with api.svc.db.session() as session:
        from nurture_mail.auth.accounts import find_user

        assert find_user(session, "admin@northwind.example").id == 1
    busy = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "busy"}, json={"email": "x@example.com"})
    assert busy.status_code == 409 and int(busy.headers["Retry-After"]) >= 1
    keys = [k for k in api.svc.redis.scan_iter("nurture:idempotency:*")]
    assert keys and all(0 < api.svc.redis.ttl(k) <= idempotency.IN_FLIGHT_SECONDS for k in keys)
    done = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "fresh"}, json={"email": "y@example.com"})
    assert done.status_code == 201
    ttls = [api.svc.redis.ttl(k) for k in api.svc.redis.scan_iter("nurture:idempotency:*")]
    assert max(ttls) > idempotency.IN_FLIGHT_SECONDS and max(ttls) <= api.svc.config.idempotency_ttl_seconds


def test_validation_failure_is_replayed_too_and_empty_key_refused(sqlite_api: ApiPlatform) -> None:
    api = sqlite_api
    bad = {"email": "nope"}
    first = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "v1"}, json=bad)
    again = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": "v1"}, json=bad)
    assert first.status_code == again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    empty = api.call("POST", "/api/v1/leads", headers={"Idempotency-Key": " "}, json={"email": "a@example.com"})
    assert empty.status_code == 422 and empty.get_json()["errors"][0]["field"] == "Idempotency-Key"


@pytest.fixture
def limited_api(make_app, sqlite_url, clock) -> ApiPlatform:
    return build_platform(make_app(sqlite_url, api_write_rate_per_minute=3), clock)


def test_writes_are_rate_limited_per_token(limited_api: ApiPlatform) -> None:
    api = limited_api
    for n in range(3):
        response = api.call("POST", "/api/v1/leads", json={"email": f"r{n}@example.com"})
        assert response.status_code == 201
    limited = api.call("POST", "/api/v1/leads", json={"email": "r9@example.com"})
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.get_json()["status"] == 429
    # PATCH shares the same write budget; reads are not limited; another token has its own budget
    assert api.call("PATCH", "/api/v1/leads/1", json={"title": "x"}).status_code == 429
    assert api.call("GET", "/api/v1/leads").status_code == 200
    assert api.call("POST", "/api/v1/leads", role="marketer", json={"email": "m@example.com"}).status_code == 201
    with api.svc.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 4


def test_every_error_under_api_is_a_problem(sqlite_api: ApiPlatform) -> None:
    api = sqlite_api
    for method, path, status in [("GET", "/api/v1/no-such-thing", 404), ("GET", "/api/nothing", 404),
                                 ("DELETE", "/api/v1/campaigns", 405), ("PUT", "/api/v1/leads/1", 405),
                                 ("GET", "/api/v1/leads/abc", 404)]:
        response = api.call(method, path)
        assert response.status_code == status, path
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert set(problem) >= {"type", "title", "status", "detail", "errors"} and problem["status"] == status
    assert "GET" in api.call("DELETE", "/api/v1/campaigns").headers["Allow"]
    # the web UI keeps its HTML pages
    assert api.client.get("/no-such-page").mimetype == "text/html"


def test_esp_webhook_still_answers_under_api_v1(sqlite_api: ApiPlatform) -> None:
    response = sqlite_api.client.post("/api/v1/webhooks/events", json={"events": []})
    assert response.status_code in (401, 403, 404, 422)  # off without WEBHOOK_SECRET, or unsigned
    assert response.status_code != 405


def test_a_key_that_expired_between_two_calls_is_reserved_only_once(sqlite_api: ApiPlatform, monkeypatch) -> None:
    """The "expired between SET NX and GET" branch reserves with NX too: of two racers one proceeds."""
    import json as jsonlib

    from flask import g

    from nurture_mail.api import idempotency
    from nurture_mail.api.security import ApiUser
    from nurture_mail.models import Role

    api = sqlite_api
    redis = api.svc.redis
    calls: list[dict] = []
    gets = iter([None])  # the first GET finds the key gone (it expired); later GETs see the racer's

    def fake_set(name, value, **kwargs):
        calls.append(kwargs)
        return None  # the other racer holds it every time

    def fake_get(name):
        return next(gets, jsonlib.dumps({"fingerprint": "racer", "state": "pending"}))

    with api.app.test_request_context("/api/v1/leads", method="POST", json={"email": "r@example.com"},
                                      headers={"Idempotency-Key": "race"}):
        g.api_user = ApiUser(1, "admin@northwind.example", Role.admin)
        monkeypatch.setattr(redis, "set", fake_set)
        monkeypatch.setattr(redis, "get", fake_get)
        try:
            idempotency.begin()
        except Exception as error:  # the racer's request is another one: 422 (or 409 when the same)
            assert getattr(error, "code", None) in (409, 422)
        else:
            raise AssertionError("both racers proceeded")
        assert len(calls) == 2 and all(c.get("nx") is True for c in calls), calls
        assert "idempotency" not in g
