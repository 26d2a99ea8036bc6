"""API keys on every call: `Authorization: Bearer KEY`, checked by a callable the bridge passes in.

The check is `(token) -> key or None` (broker.core.keys.KeyStore.check); this module
does not know what a key is, only that None means "no such key" (unknown or revoked).
It is called on the event loop for every request, so it must be quick (one indexed
SQLite read). A missing or refused key is a 401 with `WWW-Authenticate: Bearer`
(RFC 6750; `error="invalid_token"` when a key was given), in OpenAI's error shape.
Keys never reach a log: not the header, not the token, not a refused one.

With `--api-auth off` every call is let through as the anonymous caller (None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError, HttpOnlyCode

#: The key check: a token -> the key it belongs to, or None (unknown, revoked).
KeyCheck = Callable[[str], object | None]

REALM = "wyoming-voice-broker"

#: Declares the scheme in the OpenAPI document (the "Authorize" button of /docs); the
#: answer to a missing key is ours (auto_error=False), so it has OpenAI's error shape.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `wyoming-voice-broker keys create NAME`")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(check: KeyCheck | None, token: str | None) -> object | None:
    """The caller's key for `token`; None when auth is off (`check` None). Raises the 401."""
    if check is None:
        return None
    if not token:
        raise ApiError("this API needs a key: send 'Authorization: Bearer KEY'", HttpOnlyCode.UNAUTHORIZED,
                       headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'})
    key = check(token)
    if key is None:
        raise ApiError("the API key is not valid (unknown or revoked)", HttpOnlyCode.UNAUTHORIZED,
                       headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'})
    return key


async def require_key(request: Request,
                      credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
                      ) -> object | None:
    """FastAPI dependency: the calling key (None with --api-auth off), or a 401 answer."""
    check: KeyCheck | None = request.app.state.check_key
    return authenticate(check, credentials.credentials if credentials else None)


#: A route parameter `key: ApiKey` makes the route need a key and hands it over.
ApiKey = Annotated[object | None, Depends(require_key)]
