"""cachebolt.fastapi: RateLimit and WithLock through FastAPI's TestClient, on every backend and
both services (the blocking one called inline or in a worker thread, the asyncio one awaited)."""

import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import pytest
from _web import PEER, Harness, open_harness
from cachebolt import AsyncCacheService, CacheConfig, CacheService
from cachebolt.fastapi import RateLimit, WithLock, check_key_templates, client_address
from conftest import wait_until
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.routing import Mount


@pytest.fixture(params=["sync", "async"])
def harness(
    request: pytest.FixtureRequest, store: Any, service_config: CacheConfig | None
) -> Iterator[Harness]:
    with open_harness(request.param, store, service_config) as made:
        yield made


def user_header(x_user: Annotated[str | None, Header()] = None) -> str | None:
    """The test's "authentication": the X-User header, None when absent (anonymous)."""
    return x_user


async def async_user_header(x_user: Annotated[str | None, Header()] = None) -> str | None:
    return x_user


def limit_headers(response: Any) -> dict[str, str]:
    names = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after")
    return {name: response.headers[name] for name in names if name in response.headers}


# --- RateLimit ---------------------------------------------------------------------------------


def test_rate_limit_allows_exactly_limit_then_429_with_headers(harness: Harness) -> None:
    app = harness.app

    @app.post("/orders", dependencies=[Depends(RateLimit(3, 60, by=user_header))])
    def create_order() -> dict[str, bool]:
        return {"created": True}

    client = harness.start()
    for remaining in (2, 1, 0):
        response = client.post("/orders", headers={"X-User": "42"})
        assert response.status_code == 200
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Remaining"] == str(remaining)
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
        assert "Retry-After" not in response.headers
    denied = client.post("/orders", headers={"X-User": "42"})
    assert denied.status_code == 429
    assert denied.headers["content-type"] == "application/json"
    body = denied.json()["detail"]
    assert body["error"] == "rate_limited" and body["limit"] == 3
    retry = int(denied.headers["Retry-After"])
    assert 1 <= retry <= 60 and body["retry_after"] == retry
    assert denied.headers["RateLimit-Remaining"] == "0"
    assert denied.headers["X-RateLimit-Limit"] == "3"
    # Another user, and the anonymous caller (by address), have counters of their own.
    assert client.post("/orders", headers={"X-User": "43"}).status_code == 200
    assert client.post("/orders").status_code == 200
    assert harness.keys("ratelimit:*") == [
        "ratelimit:ip:198.51.100.7:POST:/orders",
        "ratelimit:user:42:POST:/orders",
        "ratelimit:user:43:POST:/orders",
    ]


def test_a_client_obeying_retry_after_is_never_refused_early(harness: Harness) -> None:
    """Hits at irregular instants: after waiting Retry-After the request passes, one second less
    would still be refused (the header is the true wait rounded up, never down)."""
    app = harness.app

    @app.get("/feed", dependencies=[Depends(RateLimit(4, 10))])
    def feed() -> list[int]:
        return [1]

    client = harness.start()
    gaps = [0.37, 1.1, 0.05, 2.9, 0.61, 0.0, 4.2, 0.33, 1.7, 0.9, 3.3, 0.2]
    refused = 0
    for gap in gaps * 3:
        harness.advance(gap)
        response = client.get("/feed")
        if response.status_code == 200:
            continue
        assert response.status_code == 429
        refused += 1
        retry = int(response.headers["Retry-After"])
        if retry > 1:
            harness.advance(retry - 1)
            assert client.get("/feed").status_code == 429  # not a second earlier
            harness.advance(1)
        else:
            harness.advance(retry)
        assert client.get("/feed").status_code == 200
    assert refused >= 5


def test_rate_limit_key_is_per_route_and_method_unless_named(harness: Harness) -> None:
    app = harness.app
    per_route = RateLimit(1, 60)
    shared = RateLimit(1, 60, key="search")

    @app.get("/items/{item_id}", dependencies=[Depends(per_route)])
    def get_item(item_id: int) -> int:
        return item_id

    @app.delete("/items/{item_id}", dependencies=[Depends(per_route)])
    def delete_item(item_id: int) -> int:
        return item_id

    @app.get("/search/a", dependencies=[Depends(shared)])
    def search_a() -> str:
        return "a"

    @app.get("/search/b", dependencies=[Depends(shared)])
    def search_b() -> str:
        return "b"

    client = harness.start()
    assert client.get("/items/1").status_code == 200
    assert client.get("/items/2").status_code == 429  # the template, not the URL, is the key
    assert client.delete("/items/1").status_code == 200  # another method, another counter
    assert client.get("/search/a").status_code == 200
    assert client.get("/search/b").status_code == 429  # one named limit for both routes


def test_rate_limit_per_router_and_as_a_parameter(harness: Harness) -> None:
    from fastapi import APIRouter

    router = APIRouter(dependencies=[Depends(RateLimit(2, 60, by=async_user_header))])

    @router.get("/a")
    def route_a() -> str:
        return "a"

    @router.get("/b")
    async def route_b(limit: Annotated[Any, Depends(RateLimit(5, 60, key="b"))]) -> dict[str, int]:
        return {"remaining": limit.remaining}

    harness.app.include_router(router)
    client = harness.start()
    assert client.get("/a").status_code == 200
    assert client.get("/a").status_code == 200
    assert client.get("/a").status_code == 429
    first = client.get("/b")
    # Two limits on the route: the headers show the one with the fewest remaining.
    assert first.status_code == 200 and first.json() == {"remaining": 4}
    assert first.headers["RateLimit-Limit"] == "2" and first.headers["RateLimit-Remaining"] == "1"
    assert client.get("/b").status_code == 200
    assert client.get("/b").status_code == 429


def test_two_limits_at_one_counter_are_refused(harness: Harness) -> None:
    # Without their own key= both would count each request at one counter (twice, or as
    # another algorithm's state): a clear error instead of a silently halved limit.
    @harness.app.get(
        "/twice", dependencies=[Depends(RateLimit(100, 60)), Depends(RateLimit(2, 3600))]
    )
    def twice() -> str:
        return "x"

    client = harness.start()  # answers an exception raised in the app as a 500
    assert client.get("/twice").status_code == 500
    if not isinstance(harness.service, CacheService):
        return  # an asyncio service lives on the harness client's loop
    with TestClient(harness.app) as raising:  # raises it instead
        raising.app.state.cachebolt = harness.service
        with pytest.raises(RuntimeError, match=r"two RateLimit dependencies of /twice.*own key="):
            raising.get("/twice")


def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(harness: Harness) -> None:
    app = harness.app

    @app.get("/otp", dependencies=[Depends(RateLimit(2, 60, trusted_proxies=["10.0.0.0/8"]))])
    def otp() -> str:
        return "sent"

    client = harness.start(client=PEER)  # a direct client, not one of our proxies
    codes = [
        client.get("/otp", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 429, 429]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(harness: Harness) -> None:
    app = harness.app

    @app.get("/otp", dependencies=[Depends(RateLimit(1, 60, trusted_proxies=["10.0.0.0/8"]))])
    def otp() -> str:
        return "sent"

    client = harness.start(client=("10.1.2.3", 5000))
    # The client wrote "6.6.6.6"; our two proxies appended the client and the first proxy.
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.9.9.9"}
    assert client.get("/otp", headers=chain).status_code == 200
    assert client.get("/otp", headers=chain).status_code == 429
    other = {"X-Forwarded-For": "6.6.6.6, 203.0.113.10, 10.9.9.9"}
    assert client.get("/otp", headers=other).status_code == 200
    assert harness.keys("ratelimit:*") == [
        "ratelimit:ip:203.0.113.10:GET:/otp",
        "ratelimit:ip:203.0.113.9:GET:/otp",
    ]


# --- client_address (no backend involved) ---------------------------------------------------


def _request(peer: str | None, *forwarded: str) -> StarletteRequest:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": headers,
        "client": None if peer is None else (peer, 1234),
    }
    return StarletteRequest(scope)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", ["1.1.1.1"], "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.1", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),  # right-most untrusted
        ("10.0.0.1", ["1.1.1.1", "203.0.113.5, 10.0.0.2"], "203.0.113.5"),  # two headers
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the left-most
        ("10.0.0.1", ["203.0.113.5, not-an-ip"], "10.0.0.1"),  # a proxy wrote garbage
        ("10.0.0.1", [], "10.0.0.1"),  # no header
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::/64"),
        ("2001:db8:0:0:aaaa::1", [], "2001:db8::/64"),  # IPv6 grouped by /64
        ("::ffff:203.0.113.5", [], "203.0.113.5"),  # IPv4-mapped counts as IPv4
        ("10.0.0.1", ["203.0.113.5:8080"], "203.0.113.5"),
        (None, [], "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert client_address(_request(peer, *forwarded), ["10.0.0.0/8"]) == expected


def test_client_address_refuses_bad_proxies() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        client_address(_request("10.0.0.1"), ["10.0.0.0/33"])
    with pytest.raises(TypeError, match="trusted_proxies"):
        client_address(_request("10.0.0.1"), "10.0.0.1")  # a str, not a list of them


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"limit": 0, "window_seconds": 1}, ValueError, "limit"),
        ({"limit": 1, "window_seconds": 0}, ValueError, "window_seconds"),
        ({"limit": 2, "window_seconds": 1, "cost": 3}, ValueError, "cost"),
        ({"limit": 2, "window_seconds": 1, "algorithm": "leaky"}, ValueError, "algorithm"),
        ({"limit": 2, "window_seconds": 1, "key": ""}, ValueError, "key"),
        ({"limit": 2, "window_seconds": 1, "by": "user"}, TypeError, "by"),
        ({"limit": 2, "window_seconds": 1, "cache": object()}, TypeError, "cache"),
    ],
)
def test_rate_limit_refuses_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RateLimit(**kwargs)


def test_with_lock_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="ttl_ms"):
        WithLock("order:create", 0)
    with pytest.raises(ValueError, match="name"):
        WithLock("", 1000)


def test_without_a_service_the_error_says_how_to_give_one() -> None:
    app = FastAPI()

    @app.get("/", dependencies=[Depends(RateLimit(1, 1))])
    def root() -> int:
        return 1

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"app\.state\.cachebolt"):
        client.get("/")


def test_import_cachebolt_does_not_import_fastapi() -> None:
    code = "import sys, cachebolt; assert 'fastapi' not in sys.modules, 'fastapi imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_fastapi_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n    import cachebolt.fastapi\nexcept ImportError as exc:\n"
        "    assert \"pip install 'cachebolt[fastapi]'\" in str(exc), exc\n"
        "else:\n    raise SystemExit('imported without fastapi')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- WithLock ----------------------------------------------------------------------------------


def _lock_app(harness: Harness, seen: list[Any]) -> Callable[[str], Any]:
    """POST /orders under WithLock("order:create") per user; ?fail=1 raises, ?http=1 answers 400.

    While the handler runs it records whether the lock was free to someone else (it must not be).
    """
    app = harness.app
    lock = WithLock("order:create", 10_000, by=user_header)

    async def probe() -> Any:
        if isinstance(harness.service, AsyncCacheService):
            return await harness.service.acquire_lock("order:create:42", 1000)
        return harness.service.acquire_lock("order:create:42", 1000)

    @app.post("/orders")
    async def create_order(
        request: Request, token: Annotated[str, Depends(lock)], fail: int = 0, http: int = 0
    ) -> dict[str, str]:
        seen.append(await probe())
        if fail:
            raise RuntimeError("handler failed")
        if http:
            raise HTTPException(status_code=400, detail="bad order")
        return {"token": token}

    return lambda key: harness.call("acquire_lock", key, 1000)


def test_with_lock_holds_during_the_request_and_frees_after(harness: Harness) -> None:
    seen: list[Any] = []
    acquire = _lock_app(harness, seen)
    client = harness.start()
    response = client.post("/orders", headers={"X-User": "42"})
    assert response.status_code == 200 and len(response.json()["token"]) >= 32
    assert seen == [None]  # held by the request while the handler ran
    token = acquire("order:create:42")  # and free once the response is out
    assert token is not None
    conflict = client.post("/orders", headers={"X-User": "42"})
    assert conflict.status_code == 409
    assert conflict.json()["detail"]["error"] == "locked"
    assert len(seen) == 1  # the handler did not run
    assert client.post("/orders", headers={"X-User": "7"}).status_code == 200  # per user
    assert harness.call("release_lock", "order:create:42", token) is True
    assert client.post("/orders", headers={"X-User": "42"}).status_code == 200


@pytest.mark.parametrize("failure", ["fail", "http"])
def test_with_lock_is_released_when_the_handler_raises(harness: Harness, failure: str) -> None:
    seen: list[Any] = []
    acquire = _lock_app(harness, seen)
    client = harness.start()
    response = client.post(f"/orders?{failure}=1", headers={"X-User": "42"})
    assert response.status_code == (500 if failure == "fail" else 400)
    assert seen == [None]
    assert acquire("order:create:42") is not None


def test_with_lock_never_releases_someone_elses_lock(harness: Harness) -> None:
    """The request's lock expires mid-request and another holder takes it: the release at the
    end of the request (its own token) leaves the new holder's lock alone."""
    app = harness.app
    tokens: list[str] = []

    @app.post("/pay/{order_id}")
    async def pay(
        order_id: str,
        token: Annotated[str, Depends(WithLock("payment:process", 10_000, key="{order_id}"))],
    ) -> str:
        service = harness.service
        # The lock "expires" (deleted) and someone else takes it.
        if isinstance(service, AsyncCacheService):
            await service.delete(f"lock:payment:process:{order_id}")
            other = await service.acquire_lock(f"payment:process:{order_id}", 10_000)
        else:
            service.delete(f"lock:payment:process:{order_id}")
            other = service.acquire_lock(f"payment:process:{order_id}", 10_000)
        assert other is not None
        tokens.append(other)
        return token

    client = harness.start()
    assert client.post("/pay/9").status_code == 200
    assert harness.call("acquire_lock", "payment:process:9", 1000) is None  # still theirs
    assert harness.call("release_lock", "payment:process:9", tokens[0]) is True


def test_with_lock_key_template_names_a_path_parameter(harness: Harness) -> None:
    app = harness.app

    @app.post("/pay/{order_id}", dependencies=[Depends(WithLock("pay", 5000, key="{order_id}"))])
    def pay(order_id: str) -> str:
        return order_id

    @app.post("/oops", dependencies=[Depends(WithLock("pay", 5000, key="{order_id}"))])
    def oops() -> str:
        return "never"

    client = harness.start()
    harness.call("acquire_lock", "pay:1", 10_000)
    assert client.post("/pay/1").status_code == 409
    assert client.post("/pay/2").status_code == 200
    assert client.post("/oops").status_code == 500  # a template naming no path parameter


def test_release_runs_after_the_response_is_sent(harness: Harness) -> None:
    """FastAPI >= 0.118 runs the exit of a yield dependency after the response: a streaming
    body is still under the lock while it streams."""
    from fastapi.responses import StreamingResponse

    app = harness.app
    during: list[Any] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"a"
        if isinstance(harness.service, AsyncCacheService):
            during.append(await harness.service.acquire_lock("export:ip:198.51.100.7", 1000))
        else:
            during.append(harness.service.acquire_lock("export:ip:198.51.100.7", 1000))
        yield b"b"

    @app.get("/export", dependencies=[Depends(WithLock("export", 5000))])
    def export() -> StreamingResponse:
        return StreamingResponse(body())

    client = harness.start()
    assert client.get("/export").content == b"ab"
    assert during == [None]
    assert harness.call("acquire_lock", "export:ip:198.51.100.7", 1000) is not None


# --- keys from validated values ----------------------------------------------------------------

SPELLINGS_OF_1 = ["01", "001", "+1", "%201", "1%20", "0001"]


def test_with_lock_key_is_the_validated_value(harness: Harness) -> None:
    """`order_id: int`: every spelling of order 1 is the one lock `pay:1`."""

    @harness.app.post(
        "/orders/{order_id}/pay", dependencies=[Depends(WithLock("pay", 5000, key="{order_id}"))]
    )
    def pay(order_id: int) -> int:
        return order_id

    client = harness.start()
    token = harness.call("acquire_lock", "pay:1", 10_000)
    for spelling in SPELLINGS_OF_1:
        assert client.post(f"/orders/{spelling}/pay").status_code == 409, spelling
    assert client.post("/orders/2/pay").json() == 2
    assert harness.call("release_lock", "pay:1", token) is True
    assert client.post("/orders/+1/pay").json() == 1
    assert harness.keys("lock:*") == []


def test_with_lock_key_of_a_uuid_is_its_canonical_form(harness: Harness) -> None:
    import uuid

    @harness.app.post(
        "/carts/{cart_id}/checkout",
        dependencies=[Depends(WithLock("checkout", 5000, key="{cart_id}"))],
    )
    def checkout(cart_id: uuid.UUID) -> str:
        return str(cart_id)

    cart = uuid.UUID("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b")
    client = harness.start()
    token = harness.call("acquire_lock", f"checkout:{cart}", 10_000)
    spellings = [str(cart).upper(), cart.hex, f"{{{cart}}}", cart.urn, cart.hex.upper()]
    for spelling in spellings:
        assert client.post(f"/carts/{spelling}/checkout").status_code == 409, spelling
    assert harness.call("release_lock", f"checkout:{cart}", token) is True


def test_concurrent_spellings_of_one_order_hold_one_lock(harness: Harness) -> None:
    """7 concurrent POST /orders/{1,01,001,+1,%201,1%20,0001}/pay: one handler runs, 6 get 409."""
    import threading

    inside: list[int] = []
    release = threading.Event()

    @harness.app.post(
        "/orders/{order_id}/pay", dependencies=[Depends(WithLock("pay", 10_000, key="{order_id}"))]
    )
    async def pay(order_id: int) -> int:
        inside.append(order_id)
        while not release.is_set():  # hold the lock until every request has been answered
            await anyio.sleep(0.01)
        return order_id

    client = harness.start()
    statuses: list[int] = []

    def post(spelling: str) -> None:
        statuses.append(client.post(f"/orders/{spelling}/pay").status_code)

    threads = [threading.Thread(target=post, args=(s,)) for s in ["1", *SPELLINGS_OF_1]]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(inside) + statuses.count(409) == 7, timeout=30)
        assert inside == [1]
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert sorted(statuses) == [200] + [409] * 6


def test_rate_limit_key_is_the_validated_value(harness: Harness) -> None:
    """3 per hour on shop 1: `01`, `001`, `+1`, `0001` are shop 1; `abc` is 422 and counts
    nothing, creating no key."""

    @harness.app.post(
        "/shops/{shop_id}/orders",
        dependencies=[Depends(RateLimit(3, 3600, key="orders:{shop_id}"))],
    )
    def order(shop_id: int) -> int:
        return shop_id

    client = harness.start()
    rejected = client.post("/shops/abc/orders")
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["loc"] == ["path", "shop_id"]
    assert harness.keys("ratelimit:*") == []
    assert [client.post("/shops/1/orders").status_code for _ in range(3)] == [200] * 3
    for spelling in ["01", "001", "+1", "0001"]:
        assert client.post(f"/shops/{spelling}/orders").status_code == 429, spelling
    assert client.post("/shops/abc/orders").status_code == 422
    assert harness.keys("ratelimit:*") == ["ratelimit:ip:198.51.100.7:orders:1"]


def test_a_dependency_declaring_the_parameter_validates_it(harness: Harness) -> None:
    """The path parameter declared by a dependency of the route (not the endpoint) is used."""

    def shop(shop_id: Annotated[int, Path(ge=1)]) -> int:
        return shop_id

    @harness.app.get(
        "/shops/{shop_id}",
        dependencies=[Depends(RateLimit(1, 3600, key="shop:{shop_id}")), Depends(shop)],
    )
    def read() -> str:
        return "ok"

    client = harness.start()
    assert client.get("/shops/0").status_code == 422  # ge=1, before any key
    assert client.get("/shops/7").status_code == 200
    assert client.get("/shops/007").status_code == 429
    assert harness.keys("ratelimit:*") == ["ratelimit:ip:198.51.100.7:shop:7"]


def test_template_values_are_escaped(harness: Harness) -> None:
    """`{tenant}` = `acme:q3` asking `payroll` is not tenant `acme` asking `q3:payroll`, and
    glob characters in a value are escaped."""

    @harness.app.get(
        "/search/{tenant}/{query}",
        dependencies=[Depends(RateLimit(1, 3600, key="search:{tenant}:{query}"))],
    )
    def search(tenant: str, query: str) -> str:
        return query

    client = harness.start()
    assert client.get("/search/acme/q3:payroll").status_code == 200
    assert client.get("/search/acme:q3/payroll").status_code == 200
    assert client.get("/search/*/[a]").status_code == 200
    assert harness.keys("ratelimit:*") == [
        "ratelimit:ip:198.51.100.7:search:%2A:%5Ba%5D",
        "ratelimit:ip:198.51.100.7:search:acme%3Aq3:payroll",
        "ratelimit:ip:198.51.100.7:search:acme:q3%3Apayroll",
    ]


def test_a_user_named_like_an_address_is_not_the_anonymous_caller(harness: Harness) -> None:
    """User `ip:198.51.100.7` and the anonymous client at 198.51.100.7: two locks, two limits."""

    @harness.app.post(
        "/export",
        dependencies=[
            Depends(RateLimit(1, 3600, by=user_header)),
            Depends(WithLock("export", 5000, by=user_header)),
        ],
    )
    def export() -> str:
        return "ok"

    client = harness.start()
    anonymous = harness.call("acquire_lock", "export:ip:198.51.100.7", 10_000)
    assert anonymous is not None
    assert client.post("/export", headers={"X-User": "ip:198.51.100.7"}).status_code == 200
    assert harness.call("release_lock", "export:ip:198.51.100.7", anonymous) is True
    assert client.post("/export").status_code == 200  # its own limit: not used by the user
    assert harness.keys("ratelimit:*") == [
        "ratelimit:ip:198.51.100.7:POST:/export",
        "ratelimit:user:ip%3A198.51.100.7:POST:/export",
    ]


# --- key templates checked at start-up ----------------------------------------------------------


def _missing(template: str, name: str, path: str) -> str:
    """The message of a template naming a parameter that its route lacks, as a regex."""
    text = f"key template '{template}' names {{{name}}}, which is not a path parameter of {path}"
    return re.escape(text) + "$"


def test_start_up_check_refuses_a_route_decorator_template() -> None:
    app = FastAPI()

    @app.get("/items/{item_id}", dependencies=[Depends(RateLimit(5, 60, key="x:{nope}"))])
    def item(item_id: int) -> int:
        return item_id

    with pytest.raises(ValueError, match=_missing("x:{nope}", "nope", "/items/{item_id}")):
        check_key_templates(app)


def test_start_up_check_refuses_a_with_lock_template_and_stops_the_lifespan() -> None:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_key_templates(app)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders/{order_id}/pay")
    def pay(order_id: int, token: str = Depends(WithLock("pay", 1000, key="{orderid}"))) -> int:
        return order_id

    message = _missing("{orderid}", "orderid", "/orders/{order_id}/pay")
    with pytest.raises(ValueError, match=message), TestClient(app):
        pass


def test_start_up_check_takes_the_parameters_of_router_and_include_prefixes() -> None:
    app = FastAPI()
    tenants = APIRouter(prefix="/t/{tenant}")

    @tenants.get("/report", dependencies=[Depends(RateLimit(5, 60, key="report:{tenant}"))])
    def report(tenant: str) -> str:
        return tenant

    shops = APIRouter()

    @shops.get("/stock", dependencies=[Depends(WithLock("stock", 1000, key="{shop}"))])
    def stock(shop: str) -> str:
        return shop

    app.include_router(tenants)
    app.include_router(shops, prefix="/shops/{shop}")
    check_key_templates(app)  # accepted: the prefixes supply {tenant} and {shop}

    plain = APIRouter()

    @plain.get("/stock", dependencies=[Depends(WithLock("stock", 1000, key="{shop}"))])
    def plain_stock() -> str:
        return "stock"

    app.include_router(plain, prefix="/v2")
    with pytest.raises(ValueError, match=_missing("{shop}", "shop", "/v2/stock")):
        check_key_templates(app)


@pytest.mark.parametrize("where", ["router", "include"])
def test_start_up_check_covers_router_level_dependencies(where: str) -> None:
    limit = [Depends(RateLimit(5, 60, key="api:{tenant}"))]
    app = FastAPI()
    router = APIRouter(dependencies=limit if where == "router" else None)

    @router.get("/items")
    def items() -> list[int]:
        return []

    app.include_router(router, prefix="/api", dependencies=limit if where == "include" else None)
    with pytest.raises(ValueError, match=_missing("api:{tenant}", "tenant", "/api/items")):
        check_key_templates(app)


def test_start_up_check_takes_the_parameters_of_a_mount() -> None:
    inner = FastAPI()

    @inner.get("/report", dependencies=[Depends(RateLimit(5, 60, key="{tenant}:{nope}"))])
    def report() -> str:
        return "report"

    outer = Starlette(routes=[Mount("/t/{tenant}", app=inner)])
    with pytest.raises(ValueError, match=_missing("{tenant}:{nope}", "nope", "/t/{tenant}/report")):
        check_key_templates(outer)


def test_without_the_start_up_check_each_request_raises_the_same_error() -> None:
    app = FastAPI()

    @app.get("/items", dependencies=[Depends(RateLimit(5, 60, key="x:{nope}"))])
    def items() -> list[int]:
        return []

    with CacheService() as cache:
        app.state.cachebolt = cache
        with (
            TestClient(app) as client,
            pytest.raises(ValueError, match=_missing("x:{nope}", "nope", "/items")),
        ):
            client.get("/items")
        assert cache.stats()["rate_limit_allowed"] == 0  # refused before counting anything


def test_template_fields_must_name_parameters() -> None:
    for template in ("{}", "{0}"):
        with pytest.raises(ValueError, match="must name path parameters"):
            WithLock("pay", 1000, key=template)
        with pytest.raises(ValueError, match="must name path parameters"):
            RateLimit(1, 60, key=template)


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("2001:db8:0:0:aaaa::1", [], "2001:db8::aaaa:0:0:1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:203.0.113.5", [], "203.0.113.5"),
        ("203.0.113.5", [], "203.0.113.5"),
    ],
)
def test_client_address_without_grouping(peer: str, forwarded: list[str], expected: str) -> None:
    request = _request(peer, *forwarded)
    assert client_address(request, ["10.0.0.0/8"], group_ipv6=False) == expected


# --- admin router: token and schema ------------------------------------------------------------

ADMIN_TOKEN = "admin-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("", "empty"),
        (" \n\t", "empty"),
        ("x" * 15, "15 characters: at least 16"),
        (" " * 20 + "x", "1 characters: at least 16"),
        ("admin token 0123456789", "' ' at position 5"),
        ("admin-token\t0123456789", "'\\\\t' at position 11"),
        ("admin-token\n0123456789", "'\\\\n' at position 11"),
        ("admin-token\x000123456789", "'\\\\x00' at position 11"),
        ("admin-tökén-0123456789", "'ö' at position 7"),
    ],
)
def test_admin_token_is_refused_with_the_reason(token: str, match: str) -> None:
    from cachebolt.fastapi import admin_router

    with CacheService() as cache, pytest.raises(ValueError, match=match):
        admin_router(cache, token=token)


def test_admin_token_read_from_a_file_works(tmp_path: Any) -> None:
    """The file's final newline (and surrounding spaces) are not part of the token."""
    from cachebolt.fastapi import admin_router

    secret = tmp_path / "token"
    secret.write_text(f"  {ADMIN_TOKEN}\n")
    app = FastAPI()
    with CacheService() as cache:
        app.include_router(admin_router(cache, token=secret.read_text()))
        with TestClient(app) as client:
            ok = client.get("/cache/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert ok.status_code == 200 and ok.json()["backend"] == "memory"
            newline = {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
            assert client.get("/cache/stats", headers=newline).status_code == 403


@pytest.mark.parametrize("listed", [False, True])
def test_admin_routes_are_out_of_the_schema_unless_asked(listed: bool) -> None:
    from cachebolt.fastapi import admin_router

    app = FastAPI()

    @app.get("/items")
    def items() -> list[int]:
        return []

    with CacheService() as cache:
        kwargs = {"include_in_schema": True} if listed else {}
        app.include_router(admin_router(cache, token=ADMIN_TOKEN, **kwargs))
        with TestClient(app) as client:
            paths = client.get("/openapi.json").json()["paths"]
            admin = sorted(path for path in paths if path.startswith("/cache"))
            assert admin == (
                ["/cache/clear-locks", "/cache/health", "/cache/keys", "/cache/stats"]
                if listed
                else []
            )
            assert "/items" in paths
            # Out of the schema, still served.
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            assert client.get("/cache/health", headers=headers).status_code == 200


def test_a_full_rate_limit_state_answers_503_with_retry_after() -> None:
    """Distinct callers past the memory backend's rate-limit share are refused, never uncounted."""
    app = FastAPI()

    @app.get("/shops/{shop}", dependencies=[Depends(RateLimit(5, 60, key="shop:{shop}"))])
    def shop(shop: int) -> int:
        return shop

    with CacheService(CacheConfig(memory_rate_limit_max_bytes=4096)) as cache:
        app.state.cachebolt = cache
        with TestClient(app) as client:
            statuses = [client.get(f"/shops/{n}") for n in range(200)]
    codes = {response.status_code for response in statuses}
    assert codes == {200, 503}
    refused = next(response for response in statuses if response.status_code == 503)
    assert refused.headers["Retry-After"] == "60"
    assert refused.json()["detail"]["error"] == "rate_limit_state_full"
