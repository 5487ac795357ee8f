"""OAuth sign-in and linking against a fake GitHub and Google served on loopback.

The fake provider is a real HTTP server (uvicorn in a thread): it issues codes, checks
the PKCE verifier against the challenge, and serves profiles, so the whole flow runs as
in production except for the host it talks to. Never the internet.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from stich.api.app import create_app
from stich.apps.models import App
from stich.auth.models import OAuthState
from stich.auth.oauth import pkce_verifier
from stich.auth.repository import AuthRepository
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import AuthProvider, UserIdentity
from stich.users.service import UserService
from tests.auth_support import (
    PASSWORD,
    account_from,
    audit_actions,
    auth_settings,
    bearer,
    credentials_found,
    credentials_in_sqlite_files,
    login,
    login_response,
    register,
    unique_email,
)
from tests.factories import hasher

CLIENTS = {"github": ("gh-client", "gh-secret"), "google": ("g-client", "g-secret")}
# The fake Google's signing keys (published at /google/certs) and a stranger's.
GOOGLE_KEYS = KeySet.generate_key_set("RSA", 2048, {"use": "sig", "alg": "RS256"}, count=1)
OTHER_KEYS = KeySet.generate_key_set("RSA", 2048, {"use": "sig", "alg": "RS256"}, count=1)


def google_id_token(claims: dict[str, Any], keys: KeySet = GOOGLE_KEYS) -> str:
    key = keys.keys[0]
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


@dataclass
class Grant:
    profile: dict[str, Any]
    challenge: str
    redirect_uri: str
    nonce: str | None = None
    used: bool = False


@dataclass
class FakeProvider:
    """GitHub and Google, as far as Stich can tell."""

    base_url: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_params: list[dict[str, str]] = field(default_factory=list)
    # Changes to what Google's next id_token says (or who signs it), for refusal tests.
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    id_token_keys: KeySet = field(default_factory=lambda: GOOGLE_KEYS)

    def app(self) -> FastAPI:
        app = FastAPI()

        def authorize(provider: str, request: Request) -> Any:
            params = dict(request.query_params)
            self.authorize_params.append(params)
            if params.get("client_id") != CLIENTS[provider][0]:
                return JSONResponse({"error": "unknown client"}, status_code=400)
            if params.get("code_challenge_method") != "S256" or not params.get("state"):
                return JSONResponse({"error": "PKCE and state are required"}, status_code=400)
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(
                dict(self.profile),
                params["code_challenge"],
                params["redirect_uri"],
                params.get("nonce"),
            )
            query = urlencode({"code": code, "state": params["state"]})
            return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

        async def token(provider: str, request: Request) -> Any:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            grant = self.grants.get(form.get("code", ""))
            client_id, client_secret = CLIENTS[provider]
            verifier = form.get("code_verifier", "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if (
                grant is None
                or grant.used
                or form.get("client_id") != client_id
                or form.get("client_secret") != client_secret
                or form.get("redirect_uri") != grant.redirect_uri
                or challenge != grant.challenge
            ):
                return JSONResponse({"error": "bad_verification_code"})  # GitHub answers 200
            grant.used = True
            access = secrets.token_urlsafe(16)
            self.tokens[access] = grant.profile
            if provider == "github":
                return {"access_token": access, "token_type": "bearer"}
            now = int(time.time())
            claims = {
                "iss": "https://accounts.google.com",
                "aud": client_id,
                "sub": str(grant.profile["id"]),
                "email": grant.profile["email"],
                "email_verified": grant.profile.get("verified", True),
                "name": grant.profile.get("name"),
                "iat": now,
                "exp": now + 3600,
                "nonce": grant.nonce,
                **self.id_token_overrides,
            }
            id_token = google_id_token(claims, self.id_token_keys)
            return {"access_token": access, "token_type": "bearer", "id_token": id_token}

        def profile_for(request: Request) -> dict[str, Any] | None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            return self.tokens.get(value) if scheme.lower() == "bearer" else None

        @app.get("/github/login/oauth/authorize")
        def github_authorize(request: Request) -> Any:
            return authorize("github", request)

        @app.post("/github/login/oauth/access_token")
        async def github_token(request: Request) -> Any:
            return await token("github", request)

        @app.get("/github/api/user")
        def github_user(request: Request) -> Any:
            profile = profile_for(request)
            if profile is None:
                return JSONResponse({"message": "Bad credentials"}, status_code=401)
            return {
                "id": profile["id"],
                "login": profile.get("login", "octocat"),
                "name": profile.get("name"),
                "avatar_url": "https://avatars.example.test/u/1",
            }

        @app.get("/github/api/user/emails")
        def github_emails(request: Request) -> Any:
            profile = profile_for(request)
            if profile is None:
                return JSONResponse({"message": "Bad credentials"}, status_code=401)
            return [
                {"email": "noreply@users.example.test", "primary": False, "verified": True},
                {
                    "email": profile["email"],
                    "primary": True,
                    "verified": profile.get("verified", True),
                },
            ]

        @app.get("/google/auth")
        def google_authorize(request: Request) -> Any:
            return authorize("google", request)

        @app.post("/google/token")
        async def google_token(request: Request) -> Any:
            return await token("google", request)

        @app.get("/google/certs")
        def google_certs() -> Any:
            return GOOGLE_KEYS.as_dict(private=False)

        @app.get("/google/userinfo")
        def google_userinfo(request: Request) -> Any:
            profile = profile_for(request)
            if profile is None:
                return JSONResponse({"error": "invalid_token"}, status_code=401)
            return {
                "sub": str(profile["id"]),
                "email": profile["email"],
                "email_verified": profile.get("verified", True),
                "name": profile.get("name"),
                "picture": "https://lh3.example.test/a/photo",
            }

        return app


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake provider did not start"
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def oauth_settings(base: str) -> dict[str, object]:
    return {
        "oauth_github_client_id": CLIENTS["github"][0],
        "oauth_github_client_secret": CLIENTS["github"][1],
        "oauth_github_authorize_url": f"{base}/github/login/oauth/authorize",
        "oauth_github_token_url": f"{base}/github/login/oauth/access_token",
        "oauth_github_api_url": f"{base}/github/api",
        "oauth_google_client_id": CLIENTS["google"][0],
        "oauth_google_client_secret": CLIENTS["google"][1],
        "oauth_google_authorize_url": f"{base}/google/auth",
        "oauth_google_token_url": f"{base}/google/token",
        "oauth_google_userinfo_url": f"{base}/google/userinfo",
        "oauth_google_jwks_url": f"{base}/google/certs",
    }


@pytest.fixture
def settings(database_url: str, tmp_path: Path, provider: FakeProvider) -> Settings:
    return auth_settings(database_url, tmp_path, **oauth_settings(provider.base_url))


def profile(**overrides: Any) -> dict[str, Any]:
    return {
        "id": secrets.randbelow(10**9),
        "email": unique_email("oauth"),
        "name": "Octo Cat",
        **overrides,
    }


def start(
    client: TestClient,
    provider_name: str = "github",
    *,
    link_headers: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    path = "link" if link_headers else "start"
    response = client.post(
        f"/api/auth/oauth/{provider_name}/{path}", json=body, headers=link_headers
    )
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    return started


def authorize(fake: FakeProvider, started: dict[str, Any], who: dict[str, Any]) -> str:
    """The user approves at the provider; returns the callback path and query."""
    fake.profile = who
    redirect = httpx.get(started["authorization_url"], follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    location = urlsplit(redirect.headers["location"])
    return f"{location.path}?{location.query}"


def round_trip(
    client: TestClient,
    fake: FakeProvider,
    who: dict[str, Any],
    provider_name: str = "github",
    **start_options: Any,
) -> httpx.Response:
    callback = authorize(fake, start(client, provider_name, **start_options), who)
    return client.get(callback)


# -- sign-up and sign-in ---------------------------------------------------------------


@pytest.mark.parametrize("provider_name", ["github", "google"])
def test_sign_up_then_sign_in_by_provider_identity(
    client: TestClient, provider: FakeProvider, provider_name: str
) -> None:
    who = profile()
    first = round_trip(client, provider, who, provider_name)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["outcome"] == "signed_up"
    assert body["user"]["email"] == who["email"] and body["user"]["email_verified"] is True
    assert body["user"]["has_password"] is False and body["user"]["provider"] == provider_name
    assert body["identity"]["provider"] == provider_name
    headers = bearer(body["tokens"]["access_token"])
    assert client.get("/api/me", headers=headers).status_code == 200

    # The provider's email changed: the identity, not the email, decides who this is.
    again = round_trip(client, provider, {**who, "email": unique_email("changed")}, provider_name)
    assert again.status_code == 200
    assert again.json()["outcome"] == "signed_in"
    assert again.json()["user"]["id"] == body["user"]["id"]
    listed = client.get("/api/auth/identities", headers=headers).json()["items"]
    assert [i["provider"] for i in listed] == [provider_name]
    if provider_name == "google":
        assert provider.authorize_params[-1]["nonce"]  # OIDC nonce is sent
    trail = audit_actions(client, account_from(body, body["user"]["email"], ""))
    assert trail[:1] == ["user.registered"] and "auth.login" in trail


def test_state_cannot_be_consumed_twice(client: TestClient, provider: FakeProvider) -> None:
    callback = authorize(provider, start(client), profile())
    assert client.get(callback).status_code == 200
    replay = client.get(callback)
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "oauth_state_invalid"


def test_concurrent_consumption_has_one_winner(
    client: TestClient, db: Database, provider: FakeProvider
) -> None:
    state = start(client)["state"]
    digest = hasher.token_hash(state)
    barrier = threading.Barrier(5)
    won: list[bool] = []

    def consume() -> None:
        barrier.wait()
        with db.write() as uow:
            row = AuthRepository(uow.session).consume_oauth_state(
                digest, AuthProvider.GITHUB, utcnow()
            )
            won.append(row is not None)

    threads = [threading.Thread(target=consume) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won) == [False, False, False, False, True]


def test_expired_state_and_wrong_provider_are_refused(
    client: TestClient, db: Database, provider: FakeProvider
) -> None:
    callback = authorize(provider, start(client), profile())
    with db.write() as uow:
        uow.session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get(callback).json()["error"]["code"] == "oauth_state_invalid"

    github_callback = authorize(provider, start(client, "github"), profile())
    as_google = github_callback.replace("/oauth/github/", "/oauth/google/")
    assert client.get(as_google).json()["error"]["code"] == "oauth_state_invalid"
    assert client.get(github_callback).status_code == 200  # still usable where it belongs


def test_denied_authorisation_spends_the_state(client: TestClient, provider: FakeProvider) -> None:
    state = start(client)["state"]
    denied = client.get(
        "/api/auth/oauth/github/callback", params={"state": state, "error": "access_denied"}
    )
    assert denied.status_code == 400 and denied.json()["error"]["code"] == "oauth_denied"
    again = client.get("/api/auth/oauth/github/callback", params={"state": state, "code": "x"})
    assert again.json()["error"]["code"] == "oauth_state_invalid"


def test_a_code_the_provider_rejects_is_a_400(client: TestClient, provider: FakeProvider) -> None:
    state = start(client)["state"]
    response = client.get(
        "/api/auth/oauth/github/callback", params={"state": state, "code": "made-up"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "oauth_code_rejected"


def test_state_and_verifier_are_stored_only_as_hashes(
    client: TestClient, db: Database, provider: FakeProvider, backend: str
) -> None:
    started = start(client, "google", redirect_to="/apps/new")
    state = started["state"]
    verifier = pkce_verifier(hasher, state)
    needles = {"state": state, "pkce verifier": verifier}
    assert credentials_found(db, needles) == []
    if backend == "sqlite":
        assert credentials_in_sqlite_files(db, needles) == []
    with db.read() as uow:
        row = uow.session.scalars(select(OAuthState)).one()
        assert row.redirect_to == "/apps/new" and row.nonce_hash and row.pkce_verifier_hash


def test_redirect_to_must_stay_on_this_site(client: TestClient, provider: FakeProvider) -> None:
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]:
        response = client.post("/api/auth/oauth/github/start", json={"redirect_to": target})
        assert response.status_code == 422, target


def test_unconfigured_provider_is_404(db: Database, database_url: str, tmp_path: Path) -> None:
    bare = auth_settings(database_url, tmp_path)
    with TestClient(create_app(bare, db), raise_server_exceptions=False) as client:
        response = client.post("/api/auth/oauth/github/start", json={})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "oauth_provider_not_configured"
        assert client.post("/api/auth/oauth/gitlab/start", json={}).status_code == 422


# -- the account-takeover path stays closed -----------------------------------------------


def test_oauth_login_with_a_victims_email_does_not_enter_the_victims_account(
    client: TestClient, db: Database, provider: FakeProvider
) -> None:
    victim = register(client)
    attacker = profile(email=victim.email.upper(), verified=True)
    response = round_trip(client, provider, attacker)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "account_exists_link_required"
    assert "tokens" not in response.text

    with db.read() as uow:
        assert uow.session.scalars(select(UserIdentity)).all() == []
    sessions = client.get("/api/auth/sessions", headers=victim.headers).json()["items"]
    assert [s["id"] for s in sessions] == [victim.session_id]
    assert "auth.oauth_link_required" in audit_actions(client, victim)
    # And the attacker's identity never got attached: a second try is refused the same way.
    assert round_trip(client, provider, attacker).status_code == 409


def test_unverified_provider_email_cannot_sign_up(
    client: TestClient, provider: FakeProvider
) -> None:
    response = round_trip(client, provider, profile(verified=False))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "oauth_email_unverified"


# -- linking and unlinking ------------------------------------------------------------------


def test_signed_in_user_links_then_signs_in_with_the_provider(
    client: TestClient, provider: FakeProvider
) -> None:
    account = register(client)
    who = profile(email=unique_email("different"))
    linked = round_trip(client, provider, who, link_headers=account.headers)
    assert linked.status_code == 200, linked.text
    assert linked.json()["outcome"] == "linked" and linked.json()["tokens"] is None
    assert linked.json()["user"]["id"] == account.user_id

    signed_in = round_trip(client, provider, who)
    assert signed_in.json()["outcome"] == "signed_in"
    assert signed_in.json()["user"]["id"] == account.user_id
    assert "auth.identity_linked" in audit_actions(client, account)

    # The same provider account cannot be linked to a second Stich account.
    other = register(client)
    taken = round_trip(client, provider, who, link_headers=other.headers)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "identity_in_use"


def test_linking_needs_a_signed_in_session(client: TestClient, provider: FakeProvider) -> None:
    assert client.post("/api/auth/oauth/github/link", json={}).status_code == 401


def test_unlink_keeps_a_way_to_sign_in(client: TestClient, provider: FakeProvider) -> None:
    body = round_trip(client, provider, profile()).json()
    headers = bearer(body["tokens"]["access_token"])
    identity_id = body["identity"]["id"]

    last = client.delete(f"/api/auth/identities/{identity_id}", headers=headers)
    assert last.status_code == 409 and last.json()["error"]["code"] == "last_sign_in_method"

    # With a password set (no current password needed for an OAuth-only account) ...
    set_password = client.post("/api/me/password", json={"new_password": PASSWORD}, headers=headers)
    assert set_password.status_code == 200
    assert client.delete(f"/api/auth/identities/{identity_id}", headers=headers).status_code == 204
    assert client.get("/api/auth/identities", headers=headers).json()["items"] == []
    login(client, body["user"]["email"])  # ... the account is still reachable

    other = register(client)
    missing = client.delete(f"/api/auth/identities/{identity_id}", headers=other.headers)
    assert missing.status_code == 404


def test_a_user_cannot_unlink_another_users_identity(
    client: TestClient, provider: FakeProvider
) -> None:
    owner = round_trip(client, provider, profile()).json()
    intruder = register(client)
    response = client.delete(
        f"/api/auth/identities/{owner['identity']['id']}", headers=intruder.headers
    )
    assert response.status_code == 404


def test_oauth_sign_in_claims_anonymous_apps_and_respects_suspension(
    client: TestClient, db: Database, provider: FakeProvider
) -> None:
    anonymous = client.post("/api/auth/anonymous").json()["anonymous_token"]
    with db.write() as uow:
        uow.session.add(App(title="draft", anonymous_owner_hash=hasher.token_hash(anonymous)))
    who = profile()
    signed_up = round_trip(client, provider, who, anonymous_token=anonymous)
    assert signed_up.json()["claimed_apps"] == 1

    with db.write() as uow:
        UserService(uow.session).set_suspended(who["email"], True, actor=None)
    suspended = round_trip(client, provider, who)
    assert suspended.status_code == 403
    assert suspended.json()["error"]["code"] == "account_suspended"
    assert login_response(client, who["email"], PASSWORD).status_code == 401


@pytest.mark.parametrize(
    "forgery",
    [
        {"aud": "someone-elses-client"},
        {"iss": "https://accounts.example.test"},
        {"nonce": "a nonce from another sign-in"},
        {"exp": 1_000_000_000, "iat": 999_996_400},  # expired long ago
        {"keys": "other"},  # signed by a key Google never published
    ],
    ids=["audience", "issuer", "nonce", "expired", "signature"],
)
def test_google_id_token_is_verified(
    client: TestClient, provider: FakeProvider, forgery: dict[str, Any]
) -> None:
    overrides = {k: v for k, v in forgery.items() if k != "keys"}
    provider.id_token_overrides = overrides
    provider.id_token_keys = OTHER_KEYS if "keys" in forgery else GOOGLE_KEYS
    try:
        refused = round_trip(client, provider, profile(), "google")
    finally:
        provider.id_token_overrides, provider.id_token_keys = {}, GOOGLE_KEYS
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "oauth_id_token_invalid"
    assert round_trip(client, provider, profile(), "google").status_code == 200
