"""Rate-limit headers on every API answer, and opt-in trouble: per-route limits that answer 429,
and injected errors, so tests can prove the bot copes.

Routes are named as in discord.py's ``Route`` paths, e.g. ``/channels/{channel_id}/messages``
or ``/webhooks/{webhook_id}/{webhook_token}``. Without configured limits every answer says
plenty is left, and nothing is ever refused.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field

from .errors import DiscordError

DEFAULT_LIMIT = 50
DEFAULT_RESET_AFTER = 1.0


@dataclass(eq=False)
class Limit:
    """At most ``limit`` requests per ``per`` seconds, counted per major parameter (channel,
    guild or webhook id), like Discord's buckets."""

    route: str
    method: str | None
    limit: int
    per: float
    hidden: bool = False  # headers claim plenty is left, so clients meet 429s
    hits: dict[str, deque[float]] = field(default_factory=dict)
    refused: int = 0  # how many 429s it has answered


@dataclass(eq=False)
class Fault:
    route: str
    method: str | None
    status: int
    code: int
    message: str
    times: int


class RateLimited(Exception):
    """A 429: the caller answers with ``body`` and ``headers``."""

    def __init__(self, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.3f} s")
        self.retry_after = retry_after
        self.headers = headers

    def body(self) -> dict[str, object]:
        return {
            "message": "You are being rate limited.",
            "retry_after": self.retry_after,
            "global": False,
        }


class Traffic:
    """Configured limits and faults, checked before each API request is handled."""

    def __init__(self) -> None:
        self.limits: list[Limit] = []
        self.faults: list[Fault] = []

    def limit(
        self,
        route: str,
        *,
        limit: int,
        per: float = 1.0,
        method: str | None = None,
        hidden: bool = False,
    ) -> Limit:
        """Allow ``limit`` requests per ``per`` seconds on ``route`` (optionally one method).

        discord.py waits by itself when the headers say none are left, so it never meets a 429
        from a limit it was told about; ``hidden`` keeps the headers generous (like Discord's
        shared and sub-limits), so the client does get 429s and must retry.
        """
        rule = Limit(route, method and method.upper(), limit, per, hidden)
        self.limits.append(rule)
        return rule

    def fail_next(
        self,
        route: str,
        *,
        status: int = 500,
        code: int = 0,
        message: str = "Internal Server Error",
        method: str | None = None,
        times: int = 1,
    ) -> Fault:
        """Answer the next ``times`` requests to ``route`` with this error instead."""
        fault = Fault(route, method and method.upper(), status, code, message, times)
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.limits.clear()
        self.faults.clear()

    def admit(self, method: str, route: str, major: str) -> dict[str, str]:
        """Check one request: raise a fault's DiscordError or RateLimited, else return the
        X-RateLimit-* headers for its answer."""
        for fault in self.faults:
            if fault.times > 0 and _matches(fault.route, fault.method, method, route):
                fault.times -= 1
                raise DiscordError(fault.status, fault.code, fault.message)
        bucket = hashlib.sha1(f"{method} {route}".encode()).hexdigest()[:16]
        rule = next((r for r in self.limits if _matches(r.route, r.method, method, route)), None)
        if rule is None:
            return _headers(bucket, DEFAULT_LIMIT, DEFAULT_LIMIT - 1, DEFAULT_RESET_AFTER)
        now = time.monotonic()
        hits = rule.hits.setdefault(major, deque())
        while hits and hits[0] <= now - rule.per:
            hits.popleft()
        if len(hits) >= rule.limit:
            rule.refused += 1
            retry_after = round(hits[0] + rule.per - now, 3)
            headers = _headers(bucket, rule.limit, 0, retry_after)
            headers.update(
                {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user"}
            )
            # discord.py only trusts a 429 that came through Discord's proxy (it checks Via).
            headers["Via"] = "1.1 google"
            raise RateLimited(retry_after, headers)
        hits.append(now)
        if rule.hidden:
            return _headers(bucket, DEFAULT_LIMIT, DEFAULT_LIMIT - 1, DEFAULT_RESET_AFTER)
        reset_after = round(hits[0] + rule.per - now, 3)
        return _headers(bucket, rule.limit, rule.limit - len(hits), reset_after)


def _matches(rule_route: str, rule_method: str | None, method: str, route: str) -> bool:
    return rule_route == route and (rule_method is None or rule_method == method)


def _headers(bucket: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": bucket,
    }
