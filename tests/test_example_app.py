"""examples/fastapi_app.py end to end through TestClient, on memory and Redis (and the cluster)."""

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cachebolt import AsyncCacheService, CacheConfig
from conftest import wait_until
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
TOKEN = "example-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _client(store: Any, service_config: CacheConfig | None, address: str) -> Iterator[TestClient]:
    kwargs: dict[str, Any] = {"config": service_config} if service_config else {"store": store}
    app = _load().create_app(AsyncCacheService(**kwargs), admin_token=TOKEN)
    with TestClient(app, client=(address, 1234)) as test_client:
        yield test_client


@pytest.fixture
def client(store: Any, service_config: CacheConfig | None) -> Iterator[TestClient]:
    with _client(store, service_config, "203.0.113.50") as test_client:
        yield test_client


@pytest.fixture
def ipv6_client(store: Any, service_config: CacheConfig | None) -> Iterator[TestClient]:
    with _client(store, service_config, "2001:db8:0:0:aaaa::1") as test_client:
        yield test_client


def test_feed_is_cached_and_invalidated_by_pub_sub(client: TestClient) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    assert client.post("/reels", json={"chef_id": 1, "title": "pasta"}).status_code == 201
    first = client.get("/feed/7")
    assert first.status_code == 200 and [r["title"] for r in first.json()["items"]] == ["pasta"]
    assert client.get("/feed/7").json() == first.json()
    assert db.queries == 1  # the second read came from the cache
    assert client.post("/reels", json={"chef_id": 1, "title": "ramen"}).status_code == 201

    # The subscriber drops every feed page when the invalidation arrives (asynchronously).
    def refreshed() -> bool:
        return [r["title"] for r in client.get("/feed/7").json()["items"]] == ["ramen", "pasta"]

    wait_until(refreshed)
    assert client.get("/feed/7", params={"page": 0}).status_code == 422


def test_orders_are_rate_limited_and_locked_per_user(client: TestClient) -> None:
    order = {"item": "thali", "quantity": 1}
    assert client.post("/orders", json=order).status_code == 401  # not logged in
    user = {"X-User-Id": "42"}
    for remaining in range(19, -1, -1):
        response = client.post("/orders", json=order, headers=user)
        assert response.status_code == 201
        assert response.headers["RateLimit-Remaining"] == str(remaining)
    denied = client.post("/orders", json=order, headers=user)
    assert denied.status_code == 429 and int(denied.headers["Retry-After"]) >= 1
    other = {"X-User-Id": "43"}
    # While user 43 has an order in flight (its lock held), a second one is refused with 409.
    portal = client.portal
    assert portal is not None
    service = client.app.state.cachebolt  # type: ignore[attr-defined]
    token = portal.call(service.acquire_lock, "order:create:43", 10_000)
    assert token is not None
    conflict = client.post("/orders", json=order, headers=other)
    assert conflict.status_code == 409
    assert portal.call(service.release_lock, "order:create:43", token) is True
    assert client.post("/orders", json=order, headers=other).status_code == 201
    # The request released its own lock after answering.
    assert portal.call(service.acquire_lock, "order:create:43", 1000) is not None


def test_otp_is_limited_per_phone_and_per_ip(client: TestClient) -> None:
    phone = "+1 (555) 010-0199"
    codes = [client.post("/auth/otp", json={"phone": phone}).status_code for _ in range(6)]
    assert codes == [202] * 5 + [429]
    denied = client.post("/auth/otp", json={"phone": phone})
    assert denied.json()["detail"]["dimension"] == "phone"
    assert int(denied.headers["Retry-After"]) >= 1
    # Other phones from the same address: the per-IP limit (20 per hour) stops them next.
    statuses = [
        client.post("/auth/otp", json={"phone": f"+1555010{i:04d}"}).status_code for i in range(20)
    ]
    assert statuses.count(202) == 15 and statuses[-1] == 429
    last = client.post("/auth/otp", json={"phone": "+15550109999"})
    assert last.json()["detail"]["dimension"] == "ip"


def test_otp_from_an_ipv6_client_is_limited_per_64(ipv6_client: TestClient) -> None:
    """An IPv6 client is served (it was 422 for every one) and counted per /64 by the limiter."""
    statuses = [
        ipv6_client.post("/auth/otp", json={"phone": f"+1555010{i:04d}"}).status_code
        for i in range(21)
    ]
    assert statuses == [202] * 20 + [429]
    last = ipv6_client.post("/auth/otp", json={"phone": "+15550109999"})
    assert last.json()["detail"]["dimension"] == "ip"
    portal = ipv6_client.portal
    assert portal is not None
    service = ipv6_client.app.state.cachebolt  # type: ignore[attr-defined]
    keys: list[str] = []
    cursor = None
    while cursor != 0:
        cursor, found = portal.call(service.scan, cursor or 0, "*:ip:2001:db8::/64*", 1000)
        keys.extend(found)
    assert keys, "no per-IP counter of the client's /64"


def test_admin_api_of_the_example(client: TestClient) -> None:
    client.get("/feed/1")
    assert client.get("/cache/stats").status_code == 401
    stats = client.get("/cache/stats", headers=ADMIN).json()
    assert stats["misses"] >= 1
    keys = client.get("/cache/keys", params={"pattern": "feed:*"}, headers=ADMIN).json()
    assert keys == {"keys": ["feed:user:1:page:1"], "cursor": "0"}
    assert client.delete("/cache/keys", params={"pattern": "feed:*"}, headers=ADMIN).json() == {
        "deleted": 1,
        "pattern": "feed:*",
    }
    assert client.get("/cache/health", headers=ADMIN).json()["backend"] in ("memory", "redis")
