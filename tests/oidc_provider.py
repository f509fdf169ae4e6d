"""A small real OpenID provider for the console's tests: discovery, JWKS, authorize, token with
PKCE and RP-initiated logout (end_session), its RSA key made here, served by uvicorn on a free
port. The integration tests (httpx as the browser) and the browser tests (chromium) sign in
through the same one."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "alama-console"
CLIENT_SECRET = "s" * 40


@dataclass
class Person:
    sub: str = "idp-subject-0001"
    preferred_username: str = "jane"
    name: str = "Jane Wanjiru"
    roles: list[str] = field(default_factory=lambda: ["staff", "alama-reviewers"])


@dataclass
class FakeIdp:
    """An OpenID provider for one test: who signs in next, what it may get wrong, and what it
    was sent."""

    url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    person: Person = field(default_factory=Person)
    #: the claim the person's roles travel in (Keycloak and Entra call theirs `groups` too)
    role_claim: str = "roles"
    signing_key: RSAKey | None = None  # another key under the same kid: a forged token
    nonce_override: str | None = None
    #: whether discovery names an end_session_endpoint (RP-initiated logout)
    end_session: bool = True
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    #: every ID token it issued, in order
    issued: list[str] = field(default_factory=list)
    #: the query of every request to its end_session endpoint, in order
    sign_outs: list[dict[str, str]] = field(default_factory=list)
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None

    def app(self) -> Starlette:
        async def discovery(_request: Request) -> Response:
            metadata = {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
            if self.end_session:
                metadata["end_session_endpoint"] = f"{self.url}/end_session"
            return JSONResponse(metadata)

        async def jwks(_request: Request) -> Response:
            return JSONResponse(KeySet([self.key]).as_dict(private=False))

        async def authorize(request: Request) -> Response:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
            assert q["code_challenge_method"] == "S256" and "openid" in q["scope"].split()
            code = secrets.token_urlsafe(16)
            self.codes[code] = dict(q)
            back = urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=302)

        async def token(request: Request) -> Response:
            form = await request.form()
            asked = self.codes.pop(str(form["code"]), None)
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if asked is None or request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(str(form["code_verifier"]).encode()).digest()
            ).rstrip(b"=")
            if challenge.decode() != asked["code_challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            assert form["redirect_uri"] == asked["redirect_uri"]
            now = int(time.time())
            claims = {
                "iss": self.url,
                "sub": self.person.sub,
                "aud": CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": self.nonce_override or asked["nonce"],
                "name": self.person.name,
                "preferred_username": self.person.preferred_username,
                self.role_claim: self.person.roles,
            }
            signed = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signing_key or self.key)
            self.issued.append(signed)
            return JSONResponse(
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": signed,
                }
            )

        async def end_session(request: Request) -> Response:
            """RP-initiated logout 1.0: the hint must be a token issued here to this client;
            then back to the client's post_logout_redirect_uri."""
            q = dict(request.query_params)
            self.sign_outs.append(q)
            if q.get("id_token_hint") not in self.issued or q.get("client_id") != CLIENT_ID:
                return PlainTextResponse("unknown ID token or client", status_code=400)
            back = q.get("post_logout_redirect_uri")
            if not back:
                return PlainTextResponse("You are signed out of the identity provider.")
            if "state" in q:
                back += ("&" if "?" in back else "?") + urlencode({"state": q["state"]})
            return RedirectResponse(back, status_code=302)

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/end_session", end_session),
            ]
        )

    async def stop(self) -> None:
        """Takes the provider off the network (an IdP that cannot be reached)."""
        if self.server is not None and self.serving is not None:
            self.server.should_exit = True
            await self.serving
            self.server = self.serving = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving_idp(provider: FakeIdp | None = None) -> AsyncIterator[FakeIdp]:
    """The provider served on 127.0.0.1 (a free port) until the block ends."""
    provider = provider or FakeIdp()
    port = free_port()
    provider.url = f"http://127.0.0.1:{port}"
    provider.server = uvicorn.Server(
        uvicorn.Config(provider.app(), host="127.0.0.1", port=port, log_config=None)
    )
    provider.serving = asyncio.create_task(provider.server.serve())
    async with asyncio.timeout(30):
        while not provider.server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.02)
    try:
        yield provider
    finally:
        await provider.stop()
