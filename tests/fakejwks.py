"""Supabase Auth at the process edge: signing keys, access tokens and a JWKS server.

Keys are generated per test run (EC P-256, RSA 2048). :class:`JwksServer` publishes their
public halves on 127.0.0.1 as Supabase does at ``/auth/v1/.well-known/jwks.json`` and counts
the fetches; :class:`SilentServer` accepts connections and never answers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PROJECT_REF = "abcdefghijklmnopqrst"
ISSUER = f"https://{PROJECT_REF}.supabase.co/auth/v1"
DROP = object()  # a claim to leave out


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def jwk(self, *, private: bool = False) -> dict[str, Any]:
        """The public half as Supabase publishes it (``private``: with the secret part too)."""
        ec_key = isinstance(self.private, ec.EllipticCurvePrivateKey)
        algorithm = jwt.algorithms.ECAlgorithm if ec_key else jwt.algorithms.RSAAlgorithm
        key = self.private if private else self.private.public_key()
        found: dict[str, Any] = algorithm.to_jwk(key, as_dict=True)
        return {
            **found,
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
            "key_ops": ["verify"],
            "ext": True,
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )

    def sign_raw(self, payload: bytes) -> str:
        """A token whose payload is these exact bytes (JSON that PyJWT's encoder would not write)."""
        return jwt.api_jws.encode(
            payload, self.private, algorithm=self.alg, headers={"kid": self.kid}
        )


def es_key() -> SigningKey:
    return SigningKey(
        f"es-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1())
    )


def rs_key() -> SigningKey:
    return SigningKey(f"rs-{uuid.uuid4().hex[:8]}", "RS256", rsa.generate_private_key(65537, 2048))


def claims(user: str, **overrides: Any) -> dict[str, Any]:
    """An access token's claims as Supabase Auth issues them."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user,
        "aud": "authenticated",
        "exp": now + 300,
        "iat": now,
        "email": "alice@example.com",
        "phone": "",
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """HS256 by hand: PyJWT refuses to use a public key as an HMAC secret, an attacker does not."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def forged(header: dict[str, Any], payload: dict[str, Any], key: SigningKey) -> str:
    """Signed by ``key``'s algorithm whatever ``header`` claims (PyJWT signs by the header)."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    algorithm = jwt.algorithms.get_default_algorithms()[key.alg]
    return signing_input + "." + b64(algorithm.sign(signing_input.encode(), key.private))


def anon_key(secret: str) -> str:
    """The legacy anon key: an HS256 JWT with role anon and no user, valid for ten years."""
    now = int(time.time())
    return jwt.encode(
        {
            "iss": "supabase",
            "ref": PROJECT_REF,
            "role": "anon",
            "iat": now,
            "exp": now + 315_360_000,
        },
        secret,
        algorithm="HS256",
    )


# ---------------------------------------------------------------- the JWKS servers
class JwksServer:
    """Publishes a JWKS on 127.0.0.1 (``status`` != 200 makes it fail) and counts fetches."""

    def __init__(self, keys: list[SigningKey]) -> None:
        self.document: dict[str, Any] = {}
        self.status = 200
        self.fetches = 0
        self.publish(keys)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.fetches += 1
                    body, status = json.dumps(outer.document).encode(), outer.status
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/auth/v1/.well-known/jwks.json"

    def publish(self, keys: list[SigningKey], *extra: dict[str, Any]) -> None:
        self.document = {"keys": [k.jwk() for k in keys] + list(extra)}

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers (a hung key server)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/jwks.json"

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self._held.append(self._sock.accept()[0])
            except TimeoutError:
                continue

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._sock.close()
