"""cachebolt.fastapi.admin_router: bearer token, pagination, namespace-bound deletion, health."""

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _web import PEER, ROUTES, Harness, open_harness
from cachebolt import CacheConfig
from cachebolt.fastapi import admin_router
from fastapi.testclient import TestClient

TOKEN = "s3cret-admin-token-0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
BAD_AUTH = {
    "none": {},
    "wrong": {"Authorization": "Bearer nope"},
    "right_length_wrong": {"Authorization": "Bearer " + "x" * len(TOKEN)},
    "one_char_off": {"Authorization": "Bearer " + TOKEN[:-1] + "8"},
    "basic_scheme": {"Authorization": f"Basic {TOKEN}"},
    "token_prefix": {"Authorization": f"Bearer {TOKEN}extra"},
    "empty_bearer": {"Authorization": "Bearer "},
}


@pytest.fixture(params=["sync", "async"])
def harness(
    request: pytest.FixtureRequest, store: Any, service_config: CacheConfig | None
) -> Iterator[Harness]:
    with open_harness(request.param, store, service_config) as made:
        made.app.include_router(admin_router(made.service, token=TOKEN))
        yield made


def all_pages(client: TestClient, pattern: str, count: int) -> tuple[list[str], int]:
    """Every key through the paginated listing, and how many pages it took."""
    keys: list[str] = []
    cursor, pages = "0", 0
    while True:
        response = client.get(
            "/cache/keys", params={"pattern": pattern, "cursor": cursor, "count": count}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["keys"]) <= count or page["cursor"] != "0"
        keys.extend(page["keys"])
        pages += 1
        cursor = page["cursor"]
        if cursor == "0":
            return keys, pages


# --- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "   ", "short-token", " " * 20 + "x"])
def test_router_without_a_real_token_is_refused(token: Any) -> None:
    from cachebolt import CacheService

    with CacheService() as cache, pytest.raises(ValueError, match="token"):
        admin_router(cache, token=token)


def test_router_refuses_a_non_service_and_a_non_str_token() -> None:
    from cachebolt import CacheService

    with pytest.raises(TypeError, match="cache"):
        admin_router(object(), token=TOKEN)  # type: ignore[arg-type]
    with CacheService() as cache, pytest.raises(TypeError, match="token"):
        admin_router(cache, token=b"x" * 32)  # type: ignore[arg-type]


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory"], indirect=True)  # the backend plays no part
@pytest.mark.parametrize("auth", list(BAD_AUTH))
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_bad_token(
    harness: Harness, method: str, path: str, auth: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = harness.start()
    harness.call("set", "keep", 1)
    token = harness.call("acquire_lock", "held", 60_000)
    with caplog.at_level(logging.WARNING, logger="cachebolt.fastapi"):
        response = client.request(method, path, headers=BAD_AUTH[auth])
    assert response.status_code == (
        401 if auth in ("none", "basic_scheme", "empty_bearer") else 403
    )
    assert set(response.json()) == {"detail"}  # nothing about the cache leaks
    assert harness.call("get", "keep") == 1  # nothing changed
    assert harness.call("release_lock", "held", token) is True
    assert any(PEER[0] in record.getMessage() for record in caplog.records)


# --- the routes, on every backend --------------------------------------------------------------


def test_pagination_returns_every_key_exactly_once(harness: Harness) -> None:
    client = harness.start()
    client.headers.update(GOOD)
    expected = [f"item:{i}" for i in range(1500)]
    for key in expected:
        harness.call("set", key, 1)
    harness.call("set", "other:1", 1)
    for count in (1000, 97):
        keys, pages = all_pages(client, "item:*", count)
        assert len(keys) == len(set(keys)) == 1500
        assert sorted(keys) == sorted(expected)
        assert pages >= 1500 // count
    keys, _ = all_pages(client, "*", 1000)
    assert sorted(keys) == sorted([*expected, "other:1"])


def test_listing_refuses_bad_arguments(harness: Harness) -> None:
    client = harness.start()
    client.headers.update(GOOD)
    assert client.get("/cache/keys", params={"count": 0}).status_code == 422
    assert client.get("/cache/keys", params={"count": 1001}).status_code == 422
    assert client.get("/cache/keys", params={"pattern": ""}).status_code == 422
    for cursor in ("-1", "abc", "1e3", "99999999999999999999999", "\uff11"):
        response = client.get("/cache/keys", params={"cursor": cursor})
        assert response.status_code in (400, 422), cursor
    assert client.delete("/cache/keys").status_code == 422  # a pattern is required


def test_delete_clear_locks_stats_and_health(
    harness: Harness, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = harness.start()
    client.headers.update(GOOD)
    for i in range(5):
        harness.call("set", f"feed:user:{i}", [i])
    harness.call("set", "profile:1", 1)
    harness.call("acquire_lock", "order:create:42", 60_000)
    with caplog.at_level(logging.WARNING, logger="cachebolt.fastapi"):
        deleted = client.delete("/cache/keys", params={"pattern": "feed:*"})
        cleared = client.post("/cache/clear-locks")
    assert deleted.status_code == 200 and deleted.json()["deleted"] == 5
    assert cleared.status_code == 200 and cleared.json() == {"deleted": 1}
    assert harness.call("get", "profile:1") == 1
    assert harness.call("acquire_lock", "order:create:42", 1000) is not None
    messages = [r.getMessage() for r in caplog.records]
    assert any(PEER[0] in m and "deleted 5 keys" in m and "feed:*" in m for m in messages)
    assert any(PEER[0] in m and "cleared 1 locks" in m for m in messages)

    stats = client.get("/cache/stats").json()
    assert stats["backend"] == ("memory" if backend == "memory" else "redis")
    assert stats["lock_acquired"] >= 2
    health = client.get("/cache/health").json()
    if backend == "memory":
        assert health == {
            "backend": "memory",
            "redis_available": False,
            "redis_ping_ms": None,
            "breaker_state": "disabled",
            "redis_maxmemory_policy": "disabled",
        }
    else:
        assert health["backend"] == "redis" and health["redis_available"] is True
        assert health["breaker_state"] == "closed"
        assert health["redis_maxmemory_policy"] == "noeviction"
        assert isinstance(health["redis_ping_ms"], float) and health["redis_ping_ms"] > 0


@pytest.mark.parametrize("backend", ["redis", "cluster"], indirect=True)
@pytest.mark.parametrize(
    "pattern", ["*", "../*", "*/../*", "[a-z]*", "\\*", "*]*", "[", "app*", "?*", "**"]
)
def test_deletion_cannot_leave_the_namespace(
    request: pytest.FixtureRequest,
    backend: str,
    store: Any,
    service_config: CacheConfig,
    pattern: str,
) -> None:
    """A service under "app[1]:" next to keys of "app1:", "app:", "other:" and no prefix: no
    pattern deletes or lists anything outside its own prefix."""
    config = dataclasses.replace(service_config, key_prefix="app[1]:")
    raw = request.getfixturevalue("redis_client" if backend == "redis" else "cluster_client")
    outside = ["app1:x", "app:x", "other:x", "x", "app[1]", "app[1]x", "[app[1]:x"]
    for key in outside:
        raw.set(key, "v")
    with open_harness("sync", store, config) as harness:
        harness.app.include_router(admin_router(harness.service, token=TOKEN))
        client = harness.start()
        client.headers.update(GOOD)
        for i in range(20):
            harness.call("set", f"k{i}", i)
        listed, _ = all_pages(client, pattern, 1000)
        response = client.delete("/cache/keys", params={"pattern": pattern})
        assert response.status_code == 200
        assert response.json()["deleted"] == len(set(listed))
        assert client.delete("/cache/keys", params={"pattern": "*"}).status_code == 200
        assert all_pages(client, "*", 1000)[0] == []
    for key in outside:
        assert raw.get(key) == "v", key
