"""Supabase Auth access tokens as Supabase signs them today (ES256/RS256 via JWKS).

Keys are generated per run (EC P-256, RSA 2048); a tiny HTTP server on 127.0.0.1 publishes
them as a JWKS and counts how often it is fetched (tests/fakejwks.py). Most cases drive a
real `aipilot serve` process; the refetch rules (interval, rotation, maximum age) run the
real Authenticator in-process against the same kind of JWKS server with a short interval.
Last, the real supabase-js (installed from npm when node and npm exist, tests/supabase_js.py)
calls an Edge Function route of the server.
"""

from __future__ import annotations

import json
import math
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from aipilot.db.engine import Database
from aipilot.server.auth import Authenticator
from aipilot.server.jwks import JwksCache
from aipilot.services.users.tokens import InvalidTokenError
from tests import supabase_js as supabase_js_client
from tests.conftest import CliFn, run_process
from tests.fakejwks import (
    DROP,
    ISSUER,
    JwksServer,
    SigningKey,
    SilentServer,
    anon_key,
    b64,
    claims,
    es_key,
    forged,
    hmac_token,
    rs_key,
)
from tests.serve_support import ServeProcess, free_port, user_id

SECRET = "legacy-jwt-secret-" + uuid.uuid4().hex + uuid.uuid4().hex  # 82 bytes, fit for HS512
KEYS = "/functions/v1/ai-keys-manager"
STATUS = {"action": "get-status"}


@pytest.fixture(scope="session")
def es() -> SigningKey:
    return es_key()


@pytest.fixture(scope="session")
def rs() -> SigningKey:
    return rs_key()


@pytest.fixture
def jwks(es: SigningKey, rs: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([es, rs]) as server:
        yield server


@pytest.fixture
def alice(database_url: str) -> str:
    return user_id(database_url, "alice")


def serve(database_url: str, log_dir: Path, **env: str) -> ServeProcess:
    return ServeProcess(database_url, log_dir, env=env).start()


def stopped(server: ServeProcess) -> str:
    """Stop gracefully; the server's output (which never shows the HS256 secret)."""
    assert server.stop() == 0, server.output()
    out = server.output()
    assert SECRET not in out
    return out


@pytest.fixture
def served(database_url: str, jwks: JwksServer, tmp_path: Path) -> Iterator[ServeProcess]:
    """A server with both kinds of key material and the Supabase issuer set."""
    server = serve(
        database_url,
        tmp_path / "serve",
        AIPILOT_JWKS_URL=jwks.url,
        AIPILOT_JWT_SECRET=SECRET,
        AIPILOT_JWT_ISSUER=ISSUER,
    )
    yield server
    stopped(server)


def status_of(http: httpx.Client, token: str) -> httpx.Response:
    return http.post(KEYS, json=STATUS, headers={"Authorization": f"Bearer {token}"})


# ---------------------------------------------------------------- accepted tokens
def test_es256_rs256_and_hs256_tokens_are_accepted(
    served: ServeProcess, jwks: JwksServer, es: SigningKey, rs: SigningKey, alice: str
) -> None:
    with served.client() as http:
        for token in (
            es.sign(claims(alice)),
            rs.sign(claims(alice)),
            jwt.encode(claims(alice), SECRET, algorithm="HS256"),
            es.sign(claims(alice, aud=["other", "authenticated"])),
        ):
            answer = status_of(http, token)
            assert answer.status_code == 200, answer.text
            assert answer.json()["success"] is True and answer.json()["data"]["openai"] is False
        models = http.get(
            "/v1/models", headers={"Authorization": f"Bearer {es.sign(claims(alice))}"}
        )
        assert models.status_code == 200
    assert jwks.fetches == 1  # one document for both kids, cached for the process


# ---------------------------------------------------------------- refused tokens
def refused_tokens(es: SigningKey, rs: SigningKey, alice: str) -> dict[str, str]:
    now = int(time.time())
    stranger = es_key()  # a valid-looking key that is not published
    confused_header = {"alg": "HS256", "typ": "JWT", "kid": rs.kid}
    return {
        "wrong aud": es.sign(claims(alice, aud="service")),
        "missing aud": es.sign(claims(alice, aud=DROP)),
        "aud list without authenticated": es.sign(claims(alice, aud=["a", "b"])),
        "aud not a string": es.sign(claims(alice, aud=7)),
        "wrong iss": es.sign(claims(alice, iss="https://evil.supabase.co/auth/v1")),
        "missing iss": es.sign(claims(alice, iss=DROP)),
        "role anon (ES256)": es.sign(claims(alice, role="anon")),
        "legacy anon key": anon_key(SECRET),
        "alg none": jwt.encode(claims(alice), None, algorithm="none"),
        "alg none with kid": b64(json.dumps({"alg": "none", "kid": es.kid}).encode())
        + "."
        + b64(json.dumps(claims(alice)).encode())
        + ".",
        "alg None spelled oddly": hmac_token({"alg": "None", "kid": es.kid}, claims(alice), b""),
        "HS256 signed with the RSA public key (PEM)": hmac_token(
            confused_header, claims(alice), rs.public_pem()
        ),
        "HS256 signed with the JWK": hmac_token(
            confused_header, claims(alice), json.dumps(rs.jwk()).encode()
        ),
        "RS256 header, HMAC of the secret": hmac_token(
            {"alg": "RS256", "typ": "JWT", "kid": rs.kid}, claims(alice), SECRET.encode()
        ),
        "ES256 header, RSA key's kid, RS256 signature": forged(
            {"alg": "ES256", "typ": "JWT", "kid": rs.kid}, claims(alice), rs
        ),
        "RS256 header, EC key's kid, ES256 signature": forged(
            {"alg": "RS256", "typ": "JWT", "kid": es.kid}, claims(alice), es
        ),
        "ES256 by an unpublished key with a published kid": SigningKey(
            es.kid, "ES256", stranger.private
        ).sign(claims(alice)),
        "RS256 without kid": jwt.encode(claims(alice), rs.private, algorithm="RS256"),
        "ES384": jwt.encode(
            claims(alice),
            ec.generate_private_key(ec.SECP384R1()),
            algorithm="ES384",
            headers={"kid": es.kid},
        ),
        "HS512 with the secret": jwt.encode(claims(alice), SECRET, algorithm="HS512"),
        "expired": es.sign(claims(alice, exp=now - 1)),
        "no exp": es.sign(claims(alice, exp=DROP)),
        "exp 1e30": es.sign(claims(alice, exp=1e30)),
        "exp 10**30": es.sign(claims(alice, exp=10**30)),
        "exp 10**400": es.sign(claims(alice, exp=10**400)),
        "exp of 5000 digits": es.sign_raw(
            json.dumps(claims(alice, exp=DROP))[:-1].encode() + b', "exp": ' + b"9" * 5000 + b"}"
        ),
        "exp a string": es.sign(claims(alice, exp=str(now + 300))),
        "exp negative": es.sign(claims(alice, exp=-5)),
        "exp true": es.sign(claims(alice, exp=True)),
        "exp NaN": es.sign(claims(alice, exp=math.nan)),
        "exp Infinity": es.sign(claims(alice, exp=math.inf)),
        "exp a list": es.sign(claims(alice, exp=[now + 300])),
        "iat 1e30": es.sign(claims(alice, iat=1e30)),
        "iat a string": es.sign(claims(alice, iat="now")),
        "iat in an hour": es.sign(claims(alice, iat=now + 3600)),
        "nbf in an hour": es.sign(claims(alice, nbf=now + 3600)),
        "nbf -1e300": es.sign(claims(alice, nbf=-1e300)),
        "sub missing": es.sign(claims(alice, sub=DROP)),
        "sub not a uuid": es.sign(claims("alice")),
        "sub a number": es.sign(claims(12345)),  # type: ignore[arg-type]
        "sub of nobody": es.sign(claims(str(uuid.uuid4()))),
        "unknown kid": stranger.sign(claims(alice)),
        "garbage header": "eyJub3QganNvbg." + b64(b"{}") + ".sig",
        "header alg a list": b64(json.dumps({"alg": ["ES256"], "kid": es.kid}).encode())
        + "."
        + b64(b"{}")
        + ".x",
    }


def test_bad_tokens_are_401_and_cost_no_fetch(
    served: ServeProcess, jwks: JwksServer, es: SigningKey, rs: SigningKey, alice: str
) -> None:
    with served.client() as http:
        assert status_of(http, es.sign(claims(alice))).status_code == 200  # the one fetch
        for case, token in refused_tokens(es, rs, alice).items():
            for answer in (
                status_of(http, token),
                http.get("/v1/models", headers={"Authorization": f"Bearer {token}"}),
            ):
                assert answer.status_code == 401, (case, answer.status_code, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
        assert status_of(http, rs.sign(claims(alice))).status_code == 200  # still serving
    assert jwks.fetches == 1  # within a minute of the first fetch, an unknown kid fetches nothing
    assert "Traceback" not in stopped(served)


def test_custom_audience_no_issuer_no_secret(
    database_url: str, jwks: JwksServer, es: SigningKey, alice: str, tmp_path: Path
) -> None:
    server = serve(
        database_url,
        tmp_path / "serve",
        AIPILOT_JWKS_URL=jwks.url,
        AIPILOT_JWT_AUDIENCE=" aipilot , other,",
    )
    try:
        with server.client() as http:
            for aud in ("aipilot", "other", ["x", "aipilot"]):
                ok = status_of(
                    http, es.sign(claims(alice, aud=aud, iss="https://any.example/auth/v1"))
                )
                assert ok.status_code == 200, (aud, ok.text)
            for aud in ("authenticated", "", ["authenticated"], DROP):
                assert status_of(http, es.sign(claims(alice, aud=aud))).status_code == 401, aud
            # no AIPILOT_JWT_SECRET: HS256 is refused, whatever it was signed with
            for key in (SECRET, es.kid * 4):
                token = jwt.encode(
                    claims(alice, aud="aipilot"), key, algorithm="HS256", headers={"kid": es.kid}
                )
                assert status_of(http, token).status_code == 401
    finally:
        stopped(server)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://", "jwks.json"])
def test_a_jwks_url_that_is_not_http_is_a_usage_error(url: str, tmp_path: Path) -> None:
    result = run_process(
        ["serve", "--port", str(free_port())],
        database_url=f"sqlite:///{tmp_path / 'aipilot.db'}",
        env={"AIPILOT_JWKS_URL": url},
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "Error: AIPILOT_JWKS_URL must be an http(s) URL"
    assert "Traceback" not in result.stderr


def test_without_jwks_url_es256_is_refused_and_hs256_still_works(
    database_url: str, es: SigningKey, alice: str, tmp_path: Path
) -> None:
    server = serve(database_url, tmp_path / "serve", AIPILOT_JWT_SECRET=SECRET)
    try:
        with server.client() as http:
            assert status_of(http, es.sign(claims(alice))).status_code == 401
            assert (
                status_of(http, jwt.encode(claims(alice), SECRET, algorithm="HS256")).status_code
                == 200
            )
            no_aud = jwt.encode(claims(alice, aud=DROP), SECRET, algorithm="HS256")
            assert status_of(http, no_aud).status_code == 401  # aud is checked on HS256 too
    finally:
        stopped(server)


def test_a_kid_flood_fetches_once(
    served: ServeProcess, jwks: JwksServer, es: SigningKey, alice: str
) -> None:
    stranger = es_key()
    tokens = [
        SigningKey(uuid.uuid4().hex, "ES256", stranger.private).sign(claims(alice))
        for _ in range(300)
    ]
    with served.client() as http, ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda t: status_of(http, t).status_code, tokens))
        assert codes == [401] * len(tokens)
        assert status_of(http, es.sign(claims(alice))).status_code == 200
    assert jwks.fetches == 1


# ---------------------------------------------------------------- key server down or hung
def test_key_server_down_is_401_at_once(
    database_url: str, es: SigningKey, alice: str, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/auth/v1/.well-known/jwks.json"  # nothing listens
    server = serve(
        database_url, tmp_path / "serve", AIPILOT_JWKS_URL=closed, AIPILOT_JWT_SECRET=SECRET
    )
    try:
        with server.client() as http:
            started = time.monotonic()
            answer = status_of(http, es.sign(claims(alice)))
            assert time.monotonic() - started < 10  # a refused connection is not waited for
            assert answer.status_code == 401 and answer.json()["code"] == "invalid_token"
            assert "could not be fetched" in answer.json()["error"]
            assert (
                status_of(http, jwt.encode(claims(alice), SECRET, algorithm="HS256")).status_code
                == 200
            )
            assert http.get("/readyz").status_code == 200
    finally:
        out = stopped(server)
    assert "could not fetch the signing keys from 127.0.0.1" in out and "Traceback" not in out


def test_a_silent_key_server_holds_no_request_past_the_timeout(
    database_url: str, es: SigningKey, alice: str, tmp_path: Path
) -> None:
    with SilentServer() as silent:
        server = serve(
            database_url, tmp_path / "serve", AIPILOT_JWKS_URL=silent.url, AIPILOT_JWT_SECRET=SECRET
        )
        try:
            with server.client() as http, ThreadPoolExecutor(8) as pool:
                started = time.monotonic()
                waiting = [pool.submit(status_of, http, es.sign(claims(alice))) for _ in range(8)]
                time.sleep(0.5)  # while they wait for the key server, other callers are served
                hs = status_of(http, jwt.encode(claims(alice), SECRET, algorithm="HS256"))
                assert hs.status_code == 200
                answers = [f.result() for f in waiting]
                elapsed = time.monotonic() - started
            assert [a.status_code for a in answers] == [401] * 8
            assert all("could not be fetched" in a.json()["error"] for a in answers)
            assert elapsed < 15  # 5 s of timeout, with room for a loaded machine; never unbounded
            assert silent.connections == 1  # one fetch for all eight callers
        finally:
            stopped(server)


# ---------------------------------------------------------------- refetch rules, in-process
@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def authenticator(db: Database, url: str, **jwks_options: float) -> Authenticator:
    return Authenticator(db, jwt_secret=None, cache_s=0, jwks=JwksCache(url, **jwks_options))


def accepted(auth: Authenticator, token: str) -> bool:
    try:
        auth.identity(f"Bearer {token}")
    except InvalidTokenError:
        return False
    return True


def test_an_unknown_kid_refetches_once_then_401(db: Database, es: SigningKey, alice: str) -> None:
    with JwksServer([es]) as server:
        # an interval long enough that 20 refused calls on a loaded machine fit inside it
        auth = authenticator(db, server.url, refetch_interval_s=3.0)
        assert accepted(auth, es.sign(claims(alice)))
        assert server.fetches == 1
        time.sleep(3.1)
        unknown = es_key().sign(claims(alice))
        with pytest.raises(InvalidTokenError, match="not published"):
            auth.identity(f"Bearer {unknown}")
        assert server.fetches == 2  # the one refetch the unknown kid earned
        for _ in range(20):
            assert not accepted(auth, unknown)
        assert server.fetches == 2  # and no more within the interval
        assert accepted(auth, es.sign(claims(alice)))


def test_a_kid_flood_fetches_at_most_once_per_interval(
    db: Database, es: SigningKey, alice: str
) -> None:
    interval = 0.25
    with JwksServer([es]) as server:
        auth = authenticator(db, server.url, refetch_interval_s=interval)
        stranger = es_key()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            tokens = [
                SigningKey(uuid.uuid4().hex, "ES256", stranger.private).sign(claims(alice))
                for _ in range(400)
            ]
            results = list(pool.map(lambda t: accepted(auth, t), tokens))
        elapsed = time.monotonic() - started
        assert not any(results)
        assert 1 <= server.fetches <= 1 + math.ceil(elapsed / interval)
        assert server.fetches < len(tokens) / 10


def test_key_rotation_standby_then_revoked(db: Database, alice: str) -> None:
    current, standby = es_key(), rs_key()
    with JwksServer([current]) as server:
        auth = authenticator(db, server.url, refetch_interval_s=0.2, max_age_s=0.6)
        assert accepted(auth, current.sign(claims(alice)))
        server.publish([current, standby])  # the standby key is published before it signs
        time.sleep(0.25)
        assert accepted(auth, standby.sign(claims(alice)))  # its first token brings it in
        assert server.fetches == 2
        server.publish([standby])  # the previous key is revoked
        time.sleep(0.7)  # past the copy's maximum age
        assert not accepted(auth, current.sign(claims(alice)))
        assert accepted(auth, standby.sign(claims(alice)))


def test_a_failing_refetch_keeps_the_keys_held(db: Database, es: SigningKey, alice: str) -> None:
    with JwksServer([es]) as server:
        auth = authenticator(db, server.url, refetch_interval_s=0.1, max_age_s=0.2)
        assert accepted(auth, es.sign(claims(alice)))
        server.status = 500
        time.sleep(0.3)
        assert accepted(auth, es.sign(claims(alice)))  # the refetch failed: the old copy serves
        assert server.fetches == 2


def test_only_usable_signing_keys_are_taken_from_the_document(db: Database, alice: str) -> None:
    good, small_rsa = (
        es_key(),
        SigningKey("rs-small", "RS256", rsa.generate_private_key(65537, 1024)),
    )
    p384 = SigningKey("es-384", "ES384", ec.generate_private_key(ec.SECP384R1()))
    enc = es_key()
    oct_key = {"kty": "oct", "kid": "oct-1", "k": b64(SECRET.encode()), "alg": "HS256"}
    private = {**good.jwk(private=True), "kid": "es-private"}
    with JwksServer([good]) as server:
        server.publish(
            [good, small_rsa, p384],
            {**enc.jwk(), "use": "enc"},
            oct_key,
            private,
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
            "not a key",  # type: ignore[arg-type]
        )
        auth = authenticator(db, server.url)
        assert accepted(auth, good.sign(claims(alice)))
        with warnings.catch_warnings():  # PyJWT warns when signing with a 1024-bit key
            warnings.simplefilter("ignore")
            small = small_rsa.sign(claims(alice))
        assert not accepted(auth, small)
        assert not accepted(auth, p384.sign(claims(alice)))
        assert not accepted(auth, enc.sign(claims(alice)))
        assert not accepted(
            auth, hmac_token({"alg": "HS256", "kid": "oct-1"}, claims(alice), SECRET.encode())
        )
        assert not accepted(
            auth, SigningKey("es-private", "ES256", good.private).sign(claims(alice))
        )


# ---------------------------------------------------------------- supabase-js
@pytest.fixture(scope="session")
def supabase_js(pytestconfig: pytest.Config) -> Path:
    """supabase-js's node_modules, installed once into pytest's cache directory."""
    assert pytestconfig.cache is not None
    return supabase_js_client.install(pytestconfig.cache.mkdir("supabase-js"))


def test_supabase_js_functions_invoke_with_an_es256_session(
    supabase_js: Path,
    served: ServeProcess,
    jwks: JwksServer,
    es: SigningKey,
    alice: str,
    cli: CliFn,
) -> None:
    assert (
        cli(
            "keys", "set", "openai", "--stdin", "--no-test", input="sk-test-" + uuid.uuid4().hex
        ).exit_code
        == 0
    )
    signed_in = supabase_js_client.invoke(
        supabase_js, url=served.url, anon_key=anon_key(SECRET), token=es.sign(claims(alice))
    )
    assert signed_in["error"] is None
    assert signed_in["data"]["success"] is True
    assert (
        signed_in["data"]["data"]["openai"] is True
        and signed_in["data"]["data"]["anthropic"] is False
    )
    signed_out = supabase_js_client.invoke(
        supabase_js, url=served.url, anon_key=anon_key(SECRET), token=None
    )  # Bearer <anon key>
    assert signed_out["data"] is None
    assert signed_out["error"] == {"name": "FunctionsHttpError", "status": 401}
    assert jwks.fetches == 1
