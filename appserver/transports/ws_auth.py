"""websocket authentication at the HTTP handshake, as the Codex app-server does it.

Two modes (`--ws-auth`): `capability-token` (the client's bearer token, hashed with SHA-256,
is compared in constant time with the SHA-256 of `--ws-token-file`'s content or with
`--ws-token-sha256`) and `signed-bearer-token` (the bearer token is a JWT signed with HS256
by the shared secret of `--ws-shared-secret-file`; `exp` is required, `exp`/`nbf` are
checked with `--ws-max-clock-skew-seconds` of leeway, `iss`/`aud` when configured). A
refusal is HTTP 401 with the reference's one-line reason as its body.

The bearer token comes in the `Authorization` header or, for clients that cannot set
headers on a websocket (browsers), in the `Sec-WebSocket-Protocol` offer as
`appserver.bearer.<base64url of the token, unpadded>` next to the plain `appserver`,
which the server then selects (`BEARER_SUBPROTOCOL`; docs/operations.md). The header wins
when both are present.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path

import attrs
import jwt

CAPABILITY_TOKEN = "capability-token"
SIGNED_BEARER_TOKEN = "signed-bearer-token"
MODES = (CAPABILITY_TOKEN, SIGNED_BEARER_TOKEN)
DEFAULT_MAX_CLOCK_SKEW_SECONDS = 30
MIN_SHARED_SECRET_BYTES = 32  # HS256 keys shorter than the hash are refused (RFC 7518 §3.2)

_INVALID_HEADER = "invalid authorization header"
_INVALID_SUBPROTOCOL = "invalid websocket bearer subprotocol"
SUBPROTOCOL = "appserver"  # the protocol name the server selects
BEARER_SUBPROTOCOL = "appserver.bearer."  # + base64url(token), carries the token


class WsAuthError(ValueError):
    """The websocket authentication settings cannot be used (bad flags, unreadable file)."""


@attrs.frozen
class CapabilityToken:
    token_sha256: bytes

    def check(self, token: str) -> str | None:
        given = hashlib.sha256(token.encode("utf-8")).digest()
        if hmac.compare_digest(given, self.token_sha256):
            return None
        return "invalid websocket bearer token"


@attrs.frozen
class SignedBearerToken:
    shared_secret: bytes = attrs.field(repr=False)
    issuer: str | None = None
    audience: str | None = None
    max_clock_skew_seconds: int = DEFAULT_MAX_CLOCK_SKEW_SECONDS

    def check(self, token: str) -> str | None:
        try:
            jwt.decode(
                token,
                self.shared_secret,
                algorithms=["HS256"],
                leeway=self.max_clock_skew_seconds,
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp"],
                    "verify_aud": self.audience is not None,
                    "verify_iat": False,  # the reference checks exp and nbf only
                },
            )
        except jwt.ExpiredSignatureError:
            return "expired websocket jwt"
        except jwt.ImmatureSignatureError:
            return "websocket jwt is not valid yet"
        except jwt.InvalidIssuerError:
            return "websocket jwt issuer mismatch"
        except jwt.InvalidAudienceError:
            return "websocket jwt audience mismatch"
        except jwt.MissingRequiredClaimError as exc:
            return {
                "iss": "websocket jwt issuer mismatch",
                "aud": "websocket jwt audience mismatch",
            }.get(exc.claim, "invalid websocket jwt")
        except jwt.InvalidTokenError:
            return "invalid websocket jwt"
        return None


WsAuthPolicy = CapabilityToken | SignedBearerToken


def bearer_token(header: str | None) -> tuple[str | None, str | None]:
    """(token, None) from an `Authorization` header value, or (None, reason)."""
    if header is None:
        return None, "missing websocket bearer token"
    scheme, sep, token = header.partition(" ")
    token = token.strip()
    if not sep or scheme.lower() != "bearer" or not token:
        return None, _INVALID_HEADER
    return token, None


def authorize(policy: WsAuthPolicy | None, header: str | None) -> str | None:
    """None when the upgrade may proceed, else the reason for the 401."""
    if policy is None:
        return None
    token, reason = bearer_token(header)
    if token is None:
        return reason
    return policy.check(token)


def subprotocol_token(protocols: Sequence[str]) -> tuple[str | None, str | None]:
    """(token, None) from an `appserver.bearer.<base64url>` offer, (None, reason) for a
    malformed one, (None, None) when there is none."""
    for protocol in protocols:
        if not protocol.startswith(BEARER_SUBPROTOCOL):
            continue
        encoded = protocol.removeprefix(BEARER_SUBPROTOCOL)
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            token = raw.decode("utf-8").strip()
        except (binascii.Error, ValueError):
            return None, _INVALID_SUBPROTOCOL
        if not token or not encoded.replace("-", "").replace("_", "").isalnum():
            return None, _INVALID_SUBPROTOCOL
        return token, None
    return None, None


def authorize_upgrade(
    policy: WsAuthPolicy | None, header: str | None, protocols: Sequence[str]
) -> str | None:
    """As `authorize`, with the token also taken from the subprotocol offer when there
    is no `Authorization` header."""
    if policy is None:
        return None
    if header is None:
        token, reason = subprotocol_token(protocols)
        if token is not None:
            return policy.check(token)
        if reason is not None:
            return reason
    return authorize(policy, header)


@attrs.frozen(kw_only=True)
class WsAuthSettings:
    """The `--ws-*` flags as given. `mode=None` with a token file or digest means
    capability-token (appserver's `--ws-token-file` alone keeps its old meaning)."""

    mode: str | None = None
    token_file: Path | None = None
    token_sha256: str | None = None
    shared_secret_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    max_clock_skew_seconds: int | None = None

    def effective_mode(self) -> str | None:
        if self.mode is not None:
            return self.mode
        if self.token_file is not None or self.token_sha256 is not None:
            return CAPABILITY_TOKEN
        return None

    def load(self) -> WsAuthPolicy | None:
        """Validate the combination and read the files; raises WsAuthError (one line)."""
        mode = self.effective_mode()
        signed_only = (
            self.shared_secret_file is not None
            or self.issuer is not None
            or self.audience is not None
            or self.max_clock_skew_seconds is not None
        )
        if mode is None:
            if signed_only:
                raise WsAuthError(
                    "--ws-shared-secret-file, --ws-issuer, --ws-audience and "
                    "--ws-max-clock-skew-seconds require --ws-auth signed-bearer-token"
                )
            return None
        if mode == CAPABILITY_TOKEN:
            if signed_only:
                raise WsAuthError(
                    "--ws-shared-secret-file, --ws-issuer, --ws-audience and "
                    "--ws-max-clock-skew-seconds require --ws-auth signed-bearer-token"
                )
            if self.token_file is not None and self.token_sha256 is not None:
                raise WsAuthError("--ws-token-file and --ws-token-sha256 are mutually exclusive")
            if self.token_sha256 is not None:
                return CapabilityToken(parse_sha256(self.token_sha256))
            if self.token_file is None:
                raise WsAuthError(
                    "--ws-token-file or --ws-token-sha256 is required with "
                    "--ws-auth capability-token"
                )
            token = read_secret("--ws-token-file", self.token_file)
            return CapabilityToken(hashlib.sha256(token.encode("utf-8")).digest())
        if mode == SIGNED_BEARER_TOKEN:
            if self.token_file is not None or self.token_sha256 is not None:
                raise WsAuthError(
                    "--ws-token-file and --ws-token-sha256 require --ws-auth capability-token, "
                    "not signed-bearer-token"
                )
            if self.shared_secret_file is None:
                raise WsAuthError(
                    "--ws-shared-secret-file is required with --ws-auth signed-bearer-token"
                )
            secret = read_secret("--ws-shared-secret-file", self.shared_secret_file).encode()
            if len(secret) < MIN_SHARED_SECRET_BYTES:
                raise WsAuthError(
                    f"--ws-shared-secret-file: the secret in {self.shared_secret_file} must be "
                    f"at least {MIN_SHARED_SECRET_BYTES} bytes"
                )
            skew = self.max_clock_skew_seconds
            if skew is not None and skew < 0:
                raise WsAuthError("--ws-max-clock-skew-seconds must not be negative")
            return SignedBearerToken(
                shared_secret=secret,
                issuer=(self.issuer or "").strip() or None,
                audience=(self.audience or "").strip() or None,
                max_clock_skew_seconds=DEFAULT_MAX_CLOCK_SKEW_SECONDS if skew is None else skew,
            )
        raise WsAuthError(f"--ws-auth: expected one of {', '.join(MODES)}, got {mode!r}")


def parse_sha256(text: str) -> bytes:
    value = text.strip()
    if len(value) != 64:
        raise WsAuthError("--ws-token-sha256 must be a 64-character hex SHA-256 digest")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise WsAuthError("--ws-token-sha256 must be a 64-character hex SHA-256 digest") from None


def read_secret(flag: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise WsAuthError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WsAuthError(f"{flag}: {path} is not UTF-8 text") from None
    if not text:
        raise WsAuthError(f"{flag}: {path} is empty")
    return text
