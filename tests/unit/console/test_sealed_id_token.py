"""An IdP sign-in's ID token is stored sealed under the session token the browser holds."""

import base64
import secrets

from services.console.people import SEALED_PREFIX, open_id_token, seal_id_token

# the shape of an ID token (a JWT); its content does not matter to the sealing
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwZXJzb24tMSIsIm5hbWUiOiJXYW5qaWt1In0.c2lnbmF0dXJl"


def test_the_session_token_opens_what_it_sealed() -> None:
    token = secrets.token_urlsafe(32)
    stored = seal_id_token(token, ID_TOKEN)
    assert stored.startswith(SEALED_PREFIX)
    assert open_id_token(token, stored) == ID_TOKEN


def test_what_is_stored_reveals_no_part_of_the_token() -> None:
    stored = seal_id_token(secrets.token_urlsafe(32), ID_TOKEN)
    for part in ID_TOKEN.split("."):
        assert part not in stored
    # sealed twice, never the same text (a fresh nonce each time)
    token = secrets.token_urlsafe(32)
    assert seal_id_token(token, ID_TOKEN) != seal_id_token(token, ID_TOKEN)


def test_another_session_cannot_open_it() -> None:
    stored = seal_id_token(secrets.token_urlsafe(32), ID_TOKEN)
    assert open_id_token(secrets.token_urlsafe(32), stored) is None


def test_a_tampered_or_foreign_value_opens_to_nothing() -> None:
    token = secrets.token_urlsafe(32)
    stored = seal_id_token(token, ID_TOKEN)
    # one bit of the ciphertext flipped (a base64 character may carry unused padding bits)
    raw = bytearray(base64.urlsafe_b64decode(stored.removeprefix(SEALED_PREFIX)))
    raw[20] ^= 1
    flipped = SEALED_PREFIX + base64.urlsafe_b64encode(bytes(raw)).decode("ascii")
    assert open_id_token(token, flipped) is None
    assert open_id_token(token, SEALED_PREFIX + "not base64!") is None
    assert open_id_token(token, SEALED_PREFIX) is None
    # a plain token (what versions before the sealing stored) is never handed on as a hint
    assert open_id_token(token, ID_TOKEN) is None
    assert open_id_token(token, None) is None
    assert open_id_token(token, "") is None
