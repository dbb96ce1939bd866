"""JWTs exactly as PROTOCOL.md section 1 describes them: HS256, iss/iat/exp, data.id (or sub)."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from accounts.models import User
from accounts.services import user_from_token
from accounts.tokens import InvalidToken, token_claims, token_from_header
from tests.factories import make_user, pyjwt_token, token_for

pytestmark = pytest.mark.django_db


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hand_made(header: dict, claims: dict, *, secret: bytes | None = None) -> str:
    """A token built byte by byte: HMAC-SHA256 over the signing input when a secret is given."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = "" if secret is None else b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def good_claims(user_id, **overrides) -> dict:
    now = int(time.time())
    return {"iss": settings.IM_JWT_ISSUER, "iat": now, "exp": now + 3600, "data": {"id": user_id}, **overrides}


def assert_refused(token: str) -> str:
    with pytest.raises(InvalidToken) as refused:
        user_from_token(token)
    return str(refused.value)


def rsa_private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- Accepted -----------------------------------------------------------------------------------


def test_a_token_minted_independently_with_pyjwt_and_the_same_secret_names_its_user(alice):
    # given a token the mall backend could have minted
    token = pyjwt_token(user_id=alice.pk)

    # when / then
    assert user_from_token(token) == alice


def test_a_token_minted_by_the_server_carries_the_compat_claims(alice):
    claims = jwt.decode(token_for(alice), settings.IM_JWT_SECRET, algorithms=["HS256"], issuer=settings.IM_JWT_ISSUER)

    assert claims["data"] == {"id": alice.pk}
    assert claims["iss"] == settings.IM_JWT_ISSUER
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == settings.IM_JWT_TTL
    assert jwt.get_unverified_header(token_for(alice))["alg"] == "HS256"


def test_a_string_sub_is_accepted_in_place_of_data_id(alice):
    now = int(time.time())
    token = pyjwt_token({"iss": settings.IM_JWT_ISSUER, "iat": now, "exp": now + 60, "sub": str(alice.pk)})

    assert user_from_token(token) == alice


def test_a_numeric_sub_is_accepted_in_place_of_data_id(alice):
    # given a token whose subject is a JSON number, as PROTOCOL.md section 1 allows
    now = int(time.time())
    token = hand_made({"alg": "HS256", "typ": "JWT"},
                      {"iss": settings.IM_JWT_ISSUER, "iat": now, "exp": now + 60, "sub": alice.pk},
                      secret=settings.IM_JWT_SECRET.encode())

    # when / then
    assert user_from_token(token) == alice


# --- Refused ------------------------------------------------------------------------------------


def test_alg_none_is_refused(alice):
    token = hand_made({"alg": "none", "typ": "JWT"}, good_claims(alice.pk))

    assert_refused(token)


def test_alg_none_is_refused_even_with_a_signature_attached(alice):
    token = hand_made({"alg": "none", "typ": "JWT"}, good_claims(alice.pk), secret=settings.IM_JWT_SECRET.encode())

    assert_refused(token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_right_secret_are_refused(alice, algorithm):
    token = pyjwt_token(good_claims(alice.pk), algorithm=algorithm)

    assert_refused(token)


def test_an_rs256_token_is_refused(alice):
    key = rsa_private_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    token = jwt.encode(good_claims(alice.pk), pem, algorithm="RS256")

    assert_refused(token)


def test_an_rs256_header_over_an_hmac_signature_with_our_secret_is_refused(alice):
    # given the classic algorithm-confusion shape: the header says RS256, the signature is an HMAC
    token = hand_made({"alg": "RS256", "typ": "JWT"}, good_claims(alice.pk), secret=settings.IM_JWT_SECRET.encode())

    assert_refused(token)


def test_an_hs256_token_signed_with_a_public_key_as_the_secret_is_refused(alice):
    public_pem = rsa_private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "typ": "JWT"}, good_claims(alice.pk), secret=public_pem)

    assert_refused(token)


def test_a_token_signed_with_another_secret_is_refused(alice):
    token = pyjwt_token(user_id=alice.pk, secret="another-secret-of-at-least-32-bytes!!")

    assert_refused(token)


def test_a_token_from_another_issuer_is_refused(alice):
    token = pyjwt_token(good_claims(alice.pk, iss="someone-else"))

    assert assert_refused(token) == "token issuer refused"


def test_a_token_without_an_issuer_is_refused(alice):
    claims = good_claims(alice.pk)
    del claims["iss"]

    assert_refused(pyjwt_token(claims))


def test_an_expired_token_is_refused(alice):
    token = pyjwt_token(user_id=alice.pk, ttl=-5)

    assert assert_refused(token) == "token expired"


def test_a_token_without_exp_is_refused(alice):
    claims = good_claims(alice.pk)
    del claims["exp"]

    assert_refused(pyjwt_token(claims))


def test_a_token_whose_payload_was_changed_after_signing_is_refused(alice, bob):
    # given alice's valid token with bob's id written into the payload
    header, _, signature = token_for(alice).split(".")
    forged = f"{header}.{segment(good_claims(bob.pk))}.{signature}"

    # when / then
    assert_refused(forged)


def test_a_token_for_a_user_that_does_not_exist_is_refused(db):
    assert assert_refused(pyjwt_token(user_id=987654)) == "user does not exist"


def test_a_token_for_an_inactive_user_is_refused(db):
    user = make_user(is_active=False)

    assert assert_refused(token_for(user)) == "user does not exist"


@pytest.mark.parametrize("claims_data", [{}, {"id": None}, {"id": 0}, {"id": -3}, {"id": True}, {"id": "seven"}])
def test_a_token_without_a_usable_user_id_is_refused(db, claims_data):
    now = int(time.time())
    token = pyjwt_token({"iss": settings.IM_JWT_ISSUER, "iat": now, "exp": now + 60, "data": claims_data})

    assert assert_refused(token) == "token has no user id"


@pytest.mark.parametrize("garbage", ["", "not-a-jwt", "a.b.c", "ey.ey.ey"])
def test_garbage_is_refused_without_crashing(db, garbage):
    with pytest.raises(InvalidToken):
        token_claims(garbage)


# --- The header forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, token",
    [
        ("bear x.y.z", "x.y.z"),
        ("Bearer x.y.z", "x.y.z"),
        ("BEARER x.y.z", "x.y.z"),
        ("Bear   x.y.z  ", "x.y.z"),
        ("x.y.z", "x.y.z"),
        ("  x.y.z ", "x.y.z"),
    ],
)
def test_token_from_header_reads_bear_bearer_in_any_case_and_a_bare_token(header, token):
    assert token_from_header(header) == token


def test_a_header_token_from_the_bear_form_names_its_user(alice):
    assert user_from_token(token_from_header(f"bear {token_for(alice)}")) == alice


# --- IM_JWT_AUTO_CREATE -------------------------------------------------------------------------


def test_auto_create_off_refuses_an_unknown_id_even_with_a_profile(db, settings):
    settings.IM_JWT_AUTO_CREATE = False
    token = pyjwt_token(good_claims(5001, nickname="Mall Mia"))

    assert_refused(token)
    assert not User.objects.filter(pk=5001).exists()


def test_auto_create_makes_the_user_from_top_level_nickname_and_avatar_claims(db, settings):
    # given
    settings.IM_JWT_AUTO_CREATE = True
    token = pyjwt_token(good_claims(5002, nickname="Mall Mia", avatar="https://mall.example.com/mia.png"))

    # when
    user = user_from_token(token)

    # then
    assert user.pk == 5002
    assert user.nickname == "Mall Mia"
    assert user.avatar == "https://mall.example.com/mia.png"
    assert User.objects.get(pk=5002) == user


def test_auto_create_reads_the_profile_inside_data_too(db, settings):
    settings.IM_JWT_AUTO_CREATE = True
    token = pyjwt_token(good_claims(None, data={"id": 5003, "nickname": "Data Dan", "avatar": "/img/dan.png"}))

    user = user_from_token(token)

    assert (user.pk, user.nickname, user.avatar) == (5003, "Data Dan", "/img/dan.png")


def test_auto_create_returns_the_same_user_the_second_time(db, settings):
    settings.IM_JWT_AUTO_CREATE = True
    token = pyjwt_token(good_claims(5004, nickname="Twice"))

    first = user_from_token(token)
    second = user_from_token(token)

    assert first == second
    assert User.objects.filter(pk=5004).count() == 1


def test_auto_create_needs_a_nickname(db, settings):
    settings.IM_JWT_AUTO_CREATE = True
    token = pyjwt_token(good_claims(5005, avatar="https://mall.example.com/x.png"))

    assert_refused(token)
    assert not User.objects.filter(pk=5005).exists()


def test_auto_create_works_even_when_someone_registered_the_username_it_would_pick(db, settings):
    # given a user who registered "u5006" (a name the original's username rule allows)
    settings.IM_JWT_AUTO_CREATE = True
    make_user(username="u5006")
    token = pyjwt_token(good_claims(5006, nickname="Mall user 5006"))

    # when the mall's user 5006 arrives for the first time
    user = user_from_token(token)

    # then that user is created under its own id
    assert (user.pk, user.nickname) == (5006, "Mall user 5006")


def test_auto_create_does_not_revive_an_inactive_user(db, settings):
    settings.IM_JWT_AUTO_CREATE = True
    user = make_user(is_active=False)
    token = pyjwt_token(good_claims(user.pk, nickname="Back again"))

    assert_refused(token)
    assert User.objects.get(pk=user.pk).is_active is False
