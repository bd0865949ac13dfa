"""A small FastAPI service in the spirit of the original NestJS module.

- `GET /feed/{user_id}?page=`: a feed page cached for `FEED_CACHE_TTL_SECONDS`
  (`feed:user:{user_id}:page:{page}`), invalidated through pub/sub when a chef posts a reel.
- `POST /reels`: stores a reel and publishes `invalidate:feed`; every instance drops its feed pages.
- `POST /orders`: 20 orders per user per hour (`RateLimit`), one at a time per user (`WithLock`,
  `lock:order:create:{user_id}`).
- `POST /auth/otp`: OTP sends limited per phone and per client IP together
  (`AsyncEnhancedRateLimitService.check_otp`).
- `/cache/*`: the admin API (`admin_router`), when `CACHE_ADMIN_TOKEN` is set.

Run it (memory mode by default; `VALKEY_ENABLED=true VALKEY_URL=redis://...` for Redis)::

    CACHE_ADMIN_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(16))') \\
        uvicorn examples.fastapi_app:create_app --factory

"Authentication" here is the `X-User-Id` header: replace `current_user` with your own.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from cachebolt import AsyncCacheService, AsyncEnhancedRateLimitService
from cachebolt.fastapi import (
    RateLimit,
    WithLock,
    admin_router,
    check_key_templates,
    client_address,
)
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, Field

logger = logging.getLogger("example")
FEED_INVALIDATION = "invalidate:feed"
PAGE_SIZE = 20
# Addresses of the load balancers in front of the app, whose X-Forwarded-For is believed.
TRUSTED_PROXIES = [p for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p]


class Database:
    """A stand-in for the real database: reels in memory, and a count of the queries made."""

    def __init__(self) -> None:
        self.reels: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.queries = 0
        self._ids = itertools.count(1)

    def feed_page(self, user_id: int, page: int) -> list[dict[str, Any]]:
        self.queries += 1
        newest = sorted(self.reels, key=lambda reel: reel["id"], reverse=True)
        return newest[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]

    def add_reel(self, chef_id: int, title: str) -> dict[str, Any]:
        reel = {"id": next(self._ids), "chef_id": chef_id, "title": title}
        self.reels.append(reel)
        return reel

    def add_order(self, user_id: str, item: str, quantity: int) -> dict[str, Any]:
        order = {"id": next(self._ids), "user_id": user_id, "item": item, "quantity": quantity}
        self.orders.append(order)
        return order


class ReelIn(BaseModel):
    chef_id: int
    title: str = Field(min_length=1, max_length=200)


class OrderIn(BaseModel):
    item: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=100)


class OtpIn(BaseModel):
    phone: str = Field(min_length=4, max_length=32)


def current_user(x_user_id: Annotated[str | None, Header()] = None) -> str:
    """The authenticated user's id (here: the X-User-Id header); 401 without one."""
    if not x_user_id:
        raise HTTPException(status_code=401, detail="log in first")
    return x_user_id


def create_app(
    cache: AsyncCacheService | None = None, *, admin_token: str | None = None
) -> FastAPI:
    """The app on `cache` (default: `AsyncCacheService.from_env()`).

    Args:
        cache: the service; the app closes it on shutdown.
        admin_token: the admin API's bearer token (default: `CACHE_ADMIN_TOKEN`; no admin API
            without one).
    """
    service = AsyncCacheService.from_env() if cache is None else cache
    limiter = AsyncEnhancedRateLimitService(service)
    db = Database()
    feed_ttl = service.config.feed_cache_ttl_seconds

    async def drop_feeds(message: dict[str, Any]) -> None:
        removed = await service.del_pattern("feed:*")
        logger.info("feed invalidation %s: %d pages dropped", message, removed)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_key_templates(app)  # a key template naming no path parameter stops the start-up
        async with service:  # connects (Redis mode) and closes on shutdown
            await service.subscribe(FEED_INVALIDATION, drop_feeds)
            yield

    app = FastAPI(title="cachebolt example", lifespan=lifespan)
    app.state.cachebolt = service  # the service of RateLimit / WithLock below
    app.state.db = db

    @app.get("/feed/{user_id}")
    async def feed(user_id: int, page: int = 1) -> dict[str, Any]:
        if page < 1:
            raise HTTPException(status_code=422, detail="page starts at 1")
        items = await service.get_or_set(
            f"feed:user:{user_id}:page:{page}", feed_ttl, lambda: db.feed_page(user_id, page)
        )
        return {"user_id": user_id, "page": page, "items": items}

    @app.post("/reels", status_code=201)
    async def create_reel(reel: ReelIn) -> dict[str, Any]:
        stored = db.add_reel(reel.chef_id, reel.title)
        await service.publish(FEED_INVALIDATION, {"reel_id": stored["id"], "chef_id": reel.chef_id})
        return stored

    @app.post(
        "/orders",
        status_code=201,
        dependencies=[
            Depends(RateLimit(20, 3600, by=current_user, trusted_proxies=TRUSTED_PROXIES)),
            Depends(WithLock("order:create", 10_000, by=current_user)),
        ],
    )
    async def create_order(
        order: OrderIn, user_id: Annotated[str, Depends(current_user)]
    ) -> dict[str, Any]:
        return db.add_order(user_id, order.item, order.quantity)

    @app.post("/auth/otp", status_code=202)
    async def send_otp(body: OtpIn, request: Request) -> dict[str, str]:
        # The address itself: check_otp groups IPv6 clients by /64 on its own.
        ip = client_address(request, TRUSTED_PROXIES, group_ipv6=False)
        try:
            result = await limiter.check_otp(body.phone, ip)
        except ValueError as exc:  # a phone number that does not normalise
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if not result:
            retry = max(math.ceil(result.retry_after), 1)  # whole seconds, rounded up
            raise HTTPException(
                status_code=429,
                detail={"error": "otp_rate_limited", "dimension": result.dimension},
                headers={"Retry-After": str(retry)},
            )
        return {"status": "sent"}  # a real service would send the SMS here

    token = os.environ.get("CACHE_ADMIN_TOKEN") if admin_token is None else admin_token
    if token:
        app.include_router(admin_router(service, token=token, trusted_proxies=TRUSTED_PROXIES))
    else:
        logger.warning("CACHE_ADMIN_TOKEN is not set: the admin API (/cache/*) is off")
    return app
