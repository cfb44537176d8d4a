"""Who is asking, and may they: API keys and end-user tokens, roles, rate limits.

Every route declares an :class:`AccessPolicy` through the dependency made by
:func:`allow` (or :data:`public`); a test walks the route table and checks
every route against every kind of caller, so a route cannot be added without
one.

* API keys (``Authorization: Bearer ba_live_...``) carry a role: ``admin``
  may do everything, ``analyst`` read analytics, ``ingest`` write events.
* End-user tokens (``Authorization: Bearer <JWT>``, signed by the host app)
  reach only routes marked for end users, and there only the caller's own
  objects: another user's object answers 404, as if it did not exist.

Who is asking is settled by :class:`~banking_analytics.api._gate.AuthenticationGate`
before the app reads a byte of the body; the route's policy then says whether
they may.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from banking_analytics.access import InvalidTokenError, KeyStore, Role, UserTokenVerifier
from banking_analytics.api._audit import record_audit
from banking_analytics.api._problems import ProblemError
from banking_analytics.api._ratelimit import RateLimiter

__all__ = [
    "AccessPolicy",
    "Authenticator",
    "PolicedRoute",
    "Principal",
    "allow",
    "bearer_token",
    "public",
]

_KEY_PREFIX = "ba_"
_bearer = HTTPBearer(auto_error=False, description="An API key (ba_live_...) or a user JWT")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: an API key with a role, or an end user (``role`` None)."""

    role: Role | None
    key_id: str | None = None
    user_id: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"user:{self.user_id}"

    @property
    def actor_role(self) -> str:
        return self.role.value if self.role else "user"

    def sees_user(self, user_id: str) -> bool:
        """Whether this caller may see that user's data (any key with the route's role may)."""
        return self.role is not None or self.user_id == user_id


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Which callers a route admits; ``end_user`` routes serve the caller's own objects."""

    roles: frozenset[Role]
    end_user: bool = False
    authenticated: bool = True

    def as_openapi(self) -> dict[str, Any]:
        return {
            "authenticated": self.authenticated,
            "roles": sorted(r.value for r in self.roles),
            "end_user_own_objects": self.end_user,
        }


class Authenticator:
    def __init__(self, keys: KeyStore, tokens: UserTokenVerifier | None) -> None:
        self._keys = keys
        self._tokens = tokens

    @property
    def keys_stale(self) -> bool:
        """Whether checking an API key now would read the store (see :meth:`refresh_keys`)."""
        return self._keys.stale

    def refresh_keys(self) -> None:
        self._keys.refresh()

    def authenticate(self, token: str | None) -> Principal:
        """The caller a bearer token names; a 401 :class:`ProblemError` saying why not."""
        if not token:
            raise _unauthorized("send an API key or user token as 'Authorization: Bearer <token>'")
        if token.startswith(_KEY_PREFIX):
            key = self._keys.authenticate(token)
            if key is None:
                raise _unauthorized("the API key is unknown, revoked or expired")
            return Principal(role=key.role, key_id=key.key_id)
        if self._tokens is None:
            raise _unauthorized("this server accepts API keys only (no user-token key is set)")
        try:
            return Principal(role=None, user_id=self._tokens.verify(token))
        except InvalidTokenError as exc:
            raise _unauthorized(f"the user token is not valid: {exc}") from None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, detail, headers={"WWW-Authenticate": 'Bearer realm="banking-analytics"'}
    )


def allow(*roles: Role, end_user: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting admins, the given roles and (optionally) end users."""
    policy = AccessPolicy(frozenset({Role.ADMIN, *roles}), end_user)

    # async: resolved on the event loop (the key check is an in-memory look-up), which
    # spares every request a hop through the thread pool.
    async def check_access(
        request: Request,
        # Declared so the OpenAPI document shows the scheme; the gate has read it.
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        limiter: RateLimiter = request.app.state.rate_limiter
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # a route outside the gate's prefix: refuse, never guess
            raise _unauthorized("this route is not behind the authentication gate")
        wait = limiter.check(principal.actor)
        if wait is not None:
            raise ProblemError(
                429,
                f"rate limit exceeded for {principal.actor}; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        admitted = principal.role in policy.roles if principal.role else policy.end_user
        if not admitted:
            # Someone probing beyond their role is worth knowing about.
            await run_in_threadpool(
                record_audit, request, principal, f"{request.method} {request.url.path}", "denied"
            )
            raise ProblemError(403, f"the {principal.actor_role} role may not do this")
        request.state.principal = principal
        return principal

    check_access.access_policy = policy  # type: ignore[attr-defined]
    return check_access


async def _public() -> None:
    """No credentials needed (liveness and readiness); async, so it takes no thread."""


_public.access_policy = AccessPolicy(frozenset(), authenticated=False)  # type: ignore[attr-defined]
public = Depends(_public)


def _policy(dependant: Dependant) -> AccessPolicy | None:
    for dependency in dependant.dependencies:
        policy = getattr(dependency.call, "access_policy", None)
        if isinstance(policy, AccessPolicy):
            return policy
        policy = _policy(dependency)
        if policy is not None:
            return policy
    return None


class PolicedRoute(APIRoute):
    """A route that cannot exist without an access policy; it is published in the
    OpenAPI document as ``x-access`` (roles admitted, and whether end users may call
    it for their own objects)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        policy = _policy(self.dependant)
        if policy is None:
            raise TypeError(f"route {path} declares no access policy (see api._auth.allow)")
        self.openapi_extra = {**(self.openapi_extra or {}), "x-access": policy.as_openapi()}
