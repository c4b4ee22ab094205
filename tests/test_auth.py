"""Sign-in and ownership (AUTH): who may see and change which session, on every route.

A server runs with every method on (anonymous, siwe, apikey, jwt). Principal B asking
for principal A's session gets exactly what B gets for an id nobody used; B's own
`session-1` is another conversation. Sign-in checks are exercised end to end: SIWE with
keys made by eth-account (and a contract wallet on a Hardhat chain), the operator's API
keys and JWTs, logout, the move of an anonymous browser's sessions, and the limits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account import Account
from eth_account.messages import encode_defunct

from chatbot.auth.siwe import build_message
from tests.chain import Chain, networks_setting, run_chain
from tests.cluster import run_cluster
from tests.redis import Redis, needs_redis
from tests.server import RunningServer, free_port, run_chatbot, run_server, server_environment
from tests.sse import is_idle_state, open_sse

SECRET = "test-auth-secret-" + "x" * 32
API_KEY = "k" * 24
JWT_SECRET = "operator-jwt-secret-" + "y" * 24
AUDIENCE, ISSUER = "chatbot-test", "https://login.example"
AUTH_ENV = {
    "AUTH": "anonymous,siwe,apikey,jwt",
    "AUTH_SECRET": SECRET,
    "API_KEYS": f"ops:{API_KEY}",
    "JWT_SECRET": JWT_SECRET,
    "JWT_AUDIENCE": AUDIENCE,
    "JWT_ISSUER": ISSUER,
    "RATE_LIMIT_AUTH": "",
}
CHAIN_ID = 31_339
KEY_A = "0x" + "a1" * 32
KEY_B = "0x" + "b2" * 32


@pytest.fixture(scope="module")
async def chain() -> AsyncIterator[Chain]:
    """The network sign-in asks about contract wallets (and whether an address is one)."""
    async with run_chain(chain_id=CHAIN_ID) as running:
        yield running


@pytest.fixture(scope="module")
async def auth_server(chain: Chain) -> AsyncIterator[RunningServer]:
    async with run_server(**AUTH_ENV, NETWORKS=networks_setting(local=chain)) as server:
        yield server


@pytest.fixture
async def http(auth_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with auth_server.client() as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def anonymous(http: httpx.AsyncClient) -> str:
    """A fresh anonymous principal's token."""
    answer = await http.post("/api/auth/anonymous")
    assert answer.status_code == 201, answer.text
    assert answer.json()["principal"].startswith("anon:")
    return str(answer.json()["token"])


def siwe_text(nonce: dict[str, Any], key: str, **changes: Any) -> str:
    fields: dict[str, Any] = {
        "domain": nonce["domain"],
        "address": Account.from_key(key).address,
        "uri": nonce["uri"],
        "chain_id": nonce["chain_id"],
        "nonce": nonce["nonce"],
        "issued_at": datetime.now(UTC),
        "statement": "Sign in to the Ethereum agent.",
    }
    fields.update(changes)
    return build_message(**fields)


def sign(text: str, key: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=text), key).signature).hex()


async def post_siwe(http: httpx.AsyncClient, text: str, key: str) -> httpx.Response:
    """Post `text` signed with `key`."""
    return await http.post("/api/auth/siwe", json={"message": text, "signature": sign(text, key)})


async def siwe(
    http: httpx.AsyncClient, key: str, headers: dict[str, str] | None = None, **changes: Any
) -> httpx.Response:
    """Ask for a nonce, sign the message (with `changes`) with `key`, and post it."""
    nonce = (await http.post("/api/auth/siwe/nonce")).json()
    text = siwe_text(nonce, key, **changes)
    body = {"message": text, "signature": sign(text, key)}
    return await http.post("/api/auth/siwe", json=body, headers=headers)


async def chat(http: httpx.AsyncClient, token: str, sid: str, text: str) -> dict[str, Any]:
    answer = await http.post(
        "/api/chat", json={"message": text, "session_id": sid}, headers=bearer(token)
    )
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


async def settle(http: httpx.AsyncClient, token: str, sid: str) -> None:
    """Wait for the session's turn to end (the typed stream says so)."""
    path = f"/api/sessions/{sid}/events"
    async with open_sse(http, path, headers=bearer(token)) as events:
        await events.until(lambda event: is_idle_state(event) or _idle_snapshot(event))


def _idle_snapshot(event: Any) -> bool:
    return bool(event.event == "snapshot" and not event.json()["is_processing"])


# ---- ownership -------------------------------------------------------------------------


WALLET_RESULT = {"tx_id": "tx_1", "status": "rejected"}


def route_calls(sid: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route that names a session, as (method, path, request kwargs)."""
    return [
        ("GET", "/api/state", {"params": {"session_id": sid}}),
        ("GET", f"/api/sessions/{sid}", {}),
        ("GET", f"/api/sessions/{sid}/messages", {}),
        ("PATCH", f"/api/sessions/{sid}", {"json": {"title": "stolen"}}),
        ("POST", "/api/interrupt", {"json": {"session_id": sid}}),
        (
            "POST",
            "/api/wallet/result",
            {"json": {"session_id": sid, "tx_id": "tx_1", "status": "rejected"}},
        ),
        ("DELETE", f"/api/sessions/{sid}", {}),
    ]


async def test_another_principals_session_answers_like_an_unknown_one(
    http: httpx.AsyncClient,
) -> None:
    """B never sees or changes A's session: every route answers B as for an id nobody
    used (same status, same body); B's own `session-1` is a separate conversation."""
    alice, bob = await anonymous(http), await anonymous(http)
    sid = f"session-1-{uuid.uuid4().hex[:6]}"
    await chat(http, alice, sid, "alice's secret plan")
    await settle(http, alice, sid)
    unused = f"session-0-{uuid.uuid4().hex[:6]}"  # logs and messages show 6 characters

    for method, path, kwargs in route_calls(sid):
        theirs = await http.request(method, path, headers=bearer(bob), **kwargs)
        unknown_path = path.replace(sid, unused)
        unknown_kwargs = _replace(kwargs, sid, unused)
        unknown = await http.request(method, unknown_path, headers=bearer(bob), **unknown_kwargs)
        assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
        assert theirs.text.replace(sid, unused) == unknown.text, path

    # Both streams: for B, A's session is an empty one that waits, like any unused id.
    for path in (f"/api/sessions/{sid}/events", f"/api/chat/stream?session_id={sid}"):
        async with open_sse(http, path, headers=bearer(bob)) as stream:
            first = await stream.next()
            assert first.json()["messages"] == [], path
    # A's session is untouched by all of that, and B's own session-1 is B's alone.
    state = (await http.get(f"/api/sessions/{sid}", headers=bearer(alice))).json()
    assert next(m["content"] for m in state["messages"]) == "alice's secret plan"
    assert state["title"] != "stolen"
    mine = await chat(http, bob, sid, "bob here")
    assert [m["content"] for m in mine["messages"] if m["sender"] == "user"] == ["bob here"]
    assert mine["session_id"] == sid
    command = await http.post(
        "/api/mcp-command",
        json={"command": "list_networks", "args": {}, "session_id": sid},
        headers=bearer(bob),
    )
    assert command.json()["session_id"] == sid


def _replace(kwargs: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        out[name] = {k: (new if v == old else v) for k, v in value.items()}
    return out


async def test_without_credentials_every_session_route_is_401(http: httpx.AsyncClient) -> None:
    for method, path, kwargs in [
        *route_calls("s-1"),
        ("POST", "/api/chat", {"json": {"message": "hi"}}),
        ("POST", "/api/sessions", {}),
        ("GET", "/api/sessions", {}),
        ("GET", "/api/sessions/s-1/events", {}),
        ("GET", "/api/chat/stream?session_id=s-1", {}),
    ]:
        answer = await http.request(method, path, **kwargs)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    forged = await http.get("/api/sessions", headers=bearer("not-a-token"))
    assert forged.status_code == 401
    assert (await http.get("/health")).text == "OK"


# ---- my conversations ------------------------------------------------------------------


async def test_my_conversations_are_listed_newest_first_renamed_and_paged(
    http: httpx.AsyncClient,
) -> None:
    me, other = await anonymous(http), await anonymous(http)
    for index in range(3):
        # Each reply ends before the next chat: the list orders by last activity.
        await chat(http, me, f"c-{index}", f"question number {index} about gas fees today")
        await settle(http, me, f"c-{index}")
    await chat(http, other, "c-0", "not yours")
    listed = (await http.get("/api/sessions", headers=bearer(me))).json()
    assert [s["session_id"] for s in listed["sessions"]] == ["c-2", "c-1", "c-0"]
    assert listed["sessions"][0]["title"] == "question number 2 about gas fees…"
    assert listed["next_cursor"] is None
    assert all(s["message_count"] >= 1 for s in listed["sessions"])

    renamed = await http.patch(
        "/api/sessions/c-1", json={"title": "  Gas  fees "}, headers=bearer(me)
    )
    assert renamed.status_code == 200
    assert renamed.json()["title"] == "Gas fees"
    empty = await http.patch("/api/sessions/c-1", json={"title": "   "}, headers=bearer(me))
    assert empty.status_code == 422

    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/api/sessions", params=params, headers=bearer(me))).json()
        seen += [(s["session_id"], s["title"]) for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [sid for sid, _ in seen] == ["c-1", "c-2", "c-0"]  # renaming is activity
    assert dict(seen)["c-1"] == "Gas fees"
    bad = await http.get("/api/sessions", params={"cursor": "garbage!"}, headers=bearer(me))
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"

    assert (await http.delete("/api/sessions/c-0", headers=bearer(me))).status_code == 204
    listed = (await http.get("/api/sessions", headers=bearer(me))).json()
    assert [s["session_id"] for s in listed["sessions"]] == ["c-1", "c-2"]


# ---- SIWE -------------------------------------------------------------------------------


async def test_sign_in_with_ethereum_and_who_am_i(http: httpx.AsyncClient) -> None:
    answer = await siwe(http, KEY_A)
    assert answer.status_code == 200, answer.text
    address = Account.from_key(KEY_A).address
    assert answer.json()["principal"] == f"eth:{address}"
    assert "chatbot_token" in answer.headers["set-cookie"]
    assert "HttpOnly" in answer.headers["set-cookie"]
    # The cookie alone is a credential (the browser's way).
    me = (await http.get("/api/auth/me")).json()
    assert me["principal"] == f"eth:{address}"
    assert set(me["methods"]) == {"anonymous", "siwe", "apikey", "jwt"}
    http.cookies.clear()
    assert (await http.get("/api/auth/me")).json()["principal"] is None


async def test_the_signed_in_address_is_the_sessions_wallet_until_one_is_reported(
    http: httpx.AsyncClient,
) -> None:
    token = (await siwe(http, KEY_A)).json()["token"]
    http.cookies.clear()
    signed_in = Account.from_key(KEY_A).address
    state = await chat(http, token, "wallet-default", "hello")
    assert (state["wallet_address"], state["wallet_chain_id"]) == (signed_in, None)
    await settle(http, token, "wallet-default")

    other = Account.from_key(KEY_B).address
    body = {"session_id": "wallet-default", "address": other, "chain_id": 10}
    reported = await http.post("/api/wallet/account", json=body, headers=bearer(token))
    assert (reported.json()["wallet_address"], reported.json()["wallet_chain_id"]) == (other, 10)
    body = {"session_id": "wallet-default", "address": None}
    gone = await http.post("/api/wallet/account", json=body, headers=bearer(token))
    assert (gone.json()["wallet_address"], gone.json()["wallet_chain_id"]) == (signed_in, None)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"domain": "evil.example"}, "siwe_domain"),
        ({"uri": "https://evil.example/login"}, "siwe_uri"),
        ({"chain_id": 999_999}, "siwe_chain"),
        ({"expiration_time": datetime.now(UTC) - timedelta(minutes=1)}, "siwe_expired"),
        ({"not_before": datetime.now(UTC) + timedelta(hours=1)}, "siwe_not_yet_valid"),
    ],
)
async def test_a_refused_sign_in_is_401_with_its_reason(
    http: httpx.AsyncClient, changes: dict[str, Any], code: str
) -> None:
    answer = await siwe(http, KEY_A, **changes)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == code
    assert "set-cookie" not in answer.headers


async def test_tampered_reused_and_borrowed_signatures_are_refused(http: httpx.AsyncClient) -> None:
    nonce = (await http.post("/api/auth/siwe/nonce")).json()
    text = siwe_text(nonce, KEY_A)
    tampered = text.replace("Sign in to", "Sign on to")
    answer = await http.post(
        "/api/auth/siwe", json={"message": tampered, "signature": sign(text, KEY_A)}
    )
    assert answer.json()["error"]["code"] == "siwe_signature"
    borrowed = await http.post(
        "/api/auth/siwe", json={"message": text, "signature": sign(text, KEY_B)}
    )
    assert borrowed.json()["error"]["code"] == "siwe_signature"
    good = await post_siwe(http, text, KEY_A)
    assert good.status_code == 200
    again = await http.post(
        "/api/auth/siwe", json={"message": text, "signature": sign(text, KEY_A)}
    )
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "siwe_nonce"
    made_up = siwe_text({**nonce, "nonce": "abcdefgh1234"}, KEY_A)
    unknown = await http.post(
        "/api/auth/siwe", json={"message": made_up, "signature": sign(made_up, KEY_A)}
    )
    assert unknown.json()["error"]["code"] == "siwe_nonce"
    garbage = await http.post("/api/auth/siwe", json={"message": "hello", "signature": "0x00"})
    assert garbage.status_code == 401
    assert garbage.json()["error"]["code"] == "siwe_invalid_message"


async def test_signing_in_moves_an_anonymous_browsers_sessions_and_logout_revokes(
    http: httpx.AsyncClient,
) -> None:
    guest = await anonymous(http)
    await chat(http, guest, "trip-1", "what is my balance?")
    await chat(http, guest, "trip-2", "send 1 eth to bob")
    await settle(http, guest, "trip-1")
    signed = await siwe(http, KEY_B, headers=bearer(guest))
    assert signed.status_code == 200, signed.text
    assert signed.json()["moved_sessions"] == 2
    token = signed.json()["token"]
    listed = (await http.get("/api/sessions", headers=bearer(token))).json()["sessions"]
    assert {s["session_id"] for s in listed} >= {"trip-1", "trip-2"}
    state = (await http.get("/api/sessions/trip-1", headers=bearer(token))).json()
    assert state["messages"][0]["content"] == "what is my balance?"
    # The guest token is spent, and the guest's ids no longer lead anywhere.
    assert (await http.get("/api/sessions", headers=bearer(guest))).status_code == 401

    assert (await http.post("/api/auth/logout", headers=bearer(token))).status_code == 204
    after = await http.get("/api/sessions/trip-1", headers=bearer(token))
    assert after.status_code == 401


async def test_a_contract_wallet_signs_in_through_eip_1271() -> None:
    """A minimal Safe-style wallet on a Hardhat chain: its owner's signature signs it in."""
    owner = Account.from_key(KEY_A)
    async with run_chain(chain_id=31_339) as chain:
        wallet = await chain.deploy("Erc1271Wallet", ["address"], [owner.address])
        env = {**AUTH_ENV, "NETWORKS": networks_setting(local=chain)}
        async with run_server(**env) as server, server.client() as http:
            nonce = (await http.post("/api/auth/siwe/nonce")).json()
            assert nonce["chain_id"] == 31_339
            text = siwe_text(nonce, KEY_A, address=wallet)
            answer = await http.post(
                "/api/auth/siwe", json={"message": text, "signature": sign(text, KEY_A)}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["principal"] == f"eth:{wallet}"
            stranger = await siwe(http, KEY_B, address=wallet)
            assert stranger.json()["error"]["code"] == "siwe_signature"


# ---- operator credentials -------------------------------------------------------------


async def test_api_keys_name_their_principal(http: httpx.AsyncClient) -> None:
    me = await http.get("/api/auth/me", headers=bearer(API_KEY))
    assert me.json()["principal"] == "key:ops"
    await chat(http, API_KEY, "k-1", "from a script")
    wrong = await http.get("/api/sessions", headers=bearer("k" * 23 + "j"))
    assert wrong.status_code == 401


def operator_token(key: Any = JWT_SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": "user-7", "aud": AUDIENCE, "iss": ISSUER, "iat": now, "exp": now + 60}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


async def test_operator_jwts_are_checked_for_audience_issuer_and_expiry(
    http: httpx.AsyncClient,
) -> None:
    good = operator_token()
    assert (await http.get("/api/auth/me", headers=bearer(good))).json()[
        "principal"
    ] == "jwt:user-7"
    assert (await http.get("/api/sessions", headers=bearer(good))).status_code == 200
    for bad in (
        operator_token(aud="someone-else"),
        operator_token(iss="https://other.example"),
        operator_token(exp=int(time.time()) - 10),
        operator_token(aud=None),
        operator_token(key="another-secret-of-enough-length!!"),
    ):
        assert (await http.get("/api/sessions", headers=bearer(bad))).status_code == 401


async def test_rs256_operator_jwts() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    env = {
        "AUTH": "jwt",
        "JWT_PUBLIC_KEY": public.decode(),
        "JWT_AUDIENCE": AUDIENCE,
        "JWT_ISSUER": ISSUER,
    }
    async with run_server(**env) as server, server.client() as http:
        good = operator_token(private, "RS256")
        assert (await http.get("/api/sessions", headers=bearer(good))).status_code == 200
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = operator_token(other, "RS256")
        assert (await http.get("/api/sessions", headers=bearer(forged))).status_code == 401
        # The public key is no HMAC secret: an HS256 token "signed" with it is refused.
        confused = jwt.encode(
            {"sub": "x", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60},
            "x" * 32,
            algorithm="HS256",
        )
        assert (await http.get("/api/sessions", headers=bearer(confused))).status_code == 401
        assert (await http.post("/api/auth/anonymous")).json()["error"][
            "code"
        ] == "auth_method_disabled"


# ---- limits -----------------------------------------------------------------------------


async def test_limits_per_principal() -> None:
    """The 31st message in a minute is 429 with Retry-After, others go on; a second
    concurrent turn past MAX_TURNS_PER_PRINCIPAL and a stream past the cap are 429."""
    env = {
        **AUTH_ENV,
        "RATE_LIMIT_MESSAGES": "30/minute",
        "MAX_TURNS_PER_PRINCIPAL": "1",
        "MAX_STREAMS_PER_PRINCIPAL": "2",
        "MAX_SESSIONS_PER_PRINCIPAL": "2",
        "SCRIPTED_TOKENS_PER_SECOND": "200",
    }
    async with run_server(**env) as server, server.client() as http:
        heavy, light = await anonymous(http), await anonymous(http)
        for _ in range(30):
            await chat(http, heavy, "m-1", "hello")
            await settle(http, heavy, "m-1")
        over = await http.post(
            "/api/chat", json={"message": "31st", "session_id": "m-2"}, headers=bearer(heavy)
        )
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert (await http.get("/api/sessions/m-2", headers=bearer(heavy))).status_code == 404
        await chat(http, light, "other", "still fine")
        await settle(http, light, "other")

        # Sessions: the second is the last one allowed.
        assert (await http.post("/api/sessions", headers=bearer(light))).status_code == 201
        third = await http.post("/api/sessions", headers=bearer(light))
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limited"

        # Streams: two open, the third is refused.
        async with (
            open_sse(http, "/api/sessions/s1/events", headers=bearer(light)),
            open_sse(http, "/api/sessions/s2/events", headers=bearer(light)),
        ):
            third = await http.get("/api/sessions/s3/events", headers=bearer(light))
            assert third.status_code == 429
        metrics = (await http.get("/metrics")).text
        assert 'chatbot_rate_limited_total{limit="messages"} 1.0' in metrics
        assert 'chatbot_rate_limited_total{limit="streams"} 1.0' in metrics
        assert 'chatbot_rate_limited_total{limit="sessions"} 1.0' in metrics


async def test_sign_in_routes_are_rate_limited_per_address() -> None:
    async with (
        run_server(**{**AUTH_ENV, "RATE_LIMIT_AUTH": "3/minute"}) as server,
        server.client() as http,
    ):
        for _ in range(3):
            assert (await http.post("/api/auth/siwe/nonce")).status_code == 200
        over = await http.post("/api/auth/anonymous")
        assert over.status_code == 429
        assert "retry-after" in over.headers
        assert (await http.get("/api/auth/me")).status_code == 200  # reading is free


async def test_start_up_refuses_unsafe_auth_settings() -> None:
    port = free_port()
    code, _, err = await run_chatbot(
        "serve", env=server_environment(port, AUTH="anonymous", CORS_ORIGINS="*")
    )
    assert code == 2
    assert "CORS_ORIGINS=*" in err
    code, _, err = await run_chatbot(
        "serve", "--host", "0.0.0.0", env=server_environment(port, AUTH="siwe")
    )
    assert code == 2
    assert "SIWE_DOMAIN" in err
    code, _, err = await run_chatbot("serve", env=server_environment(port, AUTH="none,siwe"))
    assert code == 2
    assert "AUTH=none" in err


# ---- the cluster ------------------------------------------------------------------------


@needs_redis
async def test_logout_and_the_caps_hold_on_every_worker(
    redis_server: Redis, redis_prefix: str, postgres_url: str
) -> None:
    """The turn and stream caps count the principal's turns and streams on all workers;
    a logout on one worker is refused by the others."""
    env = {
        **AUTH_ENV,
        "MAX_TURNS_PER_PRINCIPAL": "1",
        "MAX_STREAMS_PER_PRINCIPAL": "2",
        "SCRIPTED_TOKENS_PER_SECOND": "5",
    }
    async with (
        run_cluster(
            2, redis_url=redis_server.url, prefix=redis_prefix, database_url=postgres_url, **env
        ) as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):
        token = (await siwe(on_a, KEY_A)).json()["token"]
        await chat(on_a, token, "slow-1", "a long question")
        second = await on_b.post(
            "/api/chat", json={"message": "another", "session_id": "slow-2"}, headers=bearer(token)
        )
        assert second.status_code == 429, second.text
        assert second.json()["error"]["code"] == "rate_limited"
        # The same session is not a second turn: the busy policy answers.
        busy = await on_b.post(
            "/api/chat", json={"message": "more", "session_id": "slow-1"}, headers=bearer(token)
        )
        assert busy.status_code == 409

        async with (
            open_sse(on_a, "/api/sessions/slow-1/events", headers=bearer(token)),
            open_sse(on_b, "/api/sessions/slow-1/events", headers=bearer(token)),
        ):
            third = await on_a.get("/api/chat/stream?session_id=slow-1", headers=bearer(token))
            assert third.status_code == 429
            assert third.json()["error"]["code"] == "rate_limited"
            other = (await siwe(on_b, KEY_B)).json()["token"]
            async with open_sse(on_b, "/api/sessions/mine/events", headers=bearer(other)):
                pass  # another principal has a count of its own

        assert (await on_a.post("/api/auth/logout", headers=bearer(token))).status_code == 204
        assert (await on_b.get("/api/sessions", headers=bearer(token))).status_code == 401
