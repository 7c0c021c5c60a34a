"""The desk's grants from Google Groups, and the signed IAP header verified on every request."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.desk.access import (
    IAP_ISSUER,
    DeskAccess,
    IdentityError,
    grants,
    verify_iap,
)

AUDIENCE = "/projects/123456/global/backendServices/987"


class Certs:
    """Google's IAP key endpoint as the client reads it: a JWK set over HTTP."""

    def __init__(self, keys):
        self.body = json.dumps({"keys": keys}).encode()
        self.calls = 0

    def __call__(self, url, method="GET", **kwargs):
        self.calls += 1
        return type("Response", (), {"status": 200, "data": self.body, "headers": {}})()


def key_pair(kid):
    private = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "alg": "ES256", "use": "sig"}


@pytest.fixture(scope="module")
def keys():
    return key_pair("k1"), key_pair("k2")


def token(private, kid, **claims):
    now = int(time.time())
    body = {"iss": IAP_ISSUER, "aud": AUDIENCE, "email": "Paul@Retail.example",
            "sub": "accounts.google.com:1", "iat": now, "exp": now + 600, **claims}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private, algorithm="ES256", headers={"kid": kid})


def test_a_signed_assertion_names_its_person(keys):
    (private, public), _ = keys
    certs = Certs([public])
    assert verify_iap(token(private, "k1"), AUDIENCE, request=certs) == "paul@retail.example"
    assert certs.calls == 1


@pytest.mark.parametrize(
    "how, reason",
    [
        ("missing", "no x-goog-iap-jwt-assertion"),
        ("other audience", "not valid"),
        ("expired", "not valid"),
        ("no expiry", "no expiry"),
        ("other issuer", "issuer"),
        ("signed by a key not Google's", "not valid"),
        ("unknown key id", "not valid"),
        ("payload changed", "not valid"),
        ("no email", "no email"),
        ("unsigned", "not valid"),
    ],
)
def test_an_assertion_that_is_not_googles_is_refused(keys, how, reason):
    (private, public), (stranger, _) = keys
    certs = Certs([public])
    made = {
        "missing": None,
        "other audience": token(private, "k1", aud="/projects/1/global/backendServices/2"),
        "expired": token(private, "k1", iat=int(time.time()) - 3600, exp=int(time.time()) - 60),
        "no expiry": token(private, "k1", exp=None),
        "other issuer": token(private, "k1", iss="https://accounts.google.com"),
        "signed by a key not Google's": token(stranger, "k1"),
        "unknown key id": token(private, "k9"),
        "no email": token(private, "k1", email=None),
        "unsigned": jwt.encode({"iss": IAP_ISSUER, "aud": AUDIENCE, "email": "a@b.c",
                                "exp": int(time.time()) + 60}, None, algorithm="none"),
    }.get(how)  # fmt: skip
    if how == "payload changed":
        head, body, signature = token(private, "k1").split(".")
        other = token(private, "k1", email="ana.admin@retail.example").split(".")[1]
        made = ".".join([head, other, signature])
        assert other != body
    with pytest.raises(IdentityError, match=reason):
        verify_iap(made, AUDIENCE, request=certs)


def test_grants_follow_the_groups_and_an_unread_group_grants_nothing():
    access = DeskAccess(
        category_managers={"pricing-dairy@retail.example": ["dairy"],
                           "Pricing-Leads@retail.example": ["*"]},
        store_managers={"store-12@retail.example": [12], "north@retail.example": [1, 4]},
        analysts=["promo-team@retail.example"],
        readers=["finance@retail.example"],
    )  # fmt: skip
    members = {
        "pricing-dairy@retail.example": {"paul@retail.example"},
        "pricing-leads@retail.example": {"lea@retail.example"},
        "store-12@retail.example": {"sam@retail.example", "paul@retail.example"},
        "promo-team@retail.example": {"maria@retail.example"},
        "finance@retail.example": {"fin@retail.example"},
        # north@ could not be read: absent
    }
    found = grants(access, members)
    paul = found["paul@retail.example"]
    assert paul.decides("dairy") and not paul.decides("bakery") and not paul.decides(None)
    assert paul.sees_store(12) and not paul.sees_store(1) and not paul.analyst
    assert found["lea@retail.example"].decides("bakery")
    sam = found["sam@retail.example"]
    assert not sam.decides("dairy") and sam.sees_store(12) and not sam.sees_category("dairy")
    assert found["maria@retail.example"].analyst and not found["maria@retail.example"].stores
    fin = found["fin@retail.example"]
    assert fin.sees_store(4) and fin.sees_category("dairy") and not fin.decides("dairy")
    assert all(1 not in g.stores and 4 not in g.stores for g in found.values())
    assert "nobody@retail.example" not in found
    assert access.groups() == sorted(
        {"pricing-dairy@retail.example", "pricing-leads@retail.example",
         "store-12@retail.example", "north@retail.example", "promo-team@retail.example",
         "finance@retail.example"}
    )  # fmt: skip


def test_the_keys_are_fetched_once_per_ttl_not_per_request(keys):
    from shared.desk.access import KeyCache

    (private, public), _ = keys
    certs, now = Certs([public]), [0.0]
    cache = KeyCache(certs, ttl_s=300, clock=lambda: now[0])
    for _ in range(3):
        assert verify_iap(token(private, "k1"), AUDIENCE, request=cache) == "paul@retail.example"
    assert certs.calls == 1
    now[0] = 300.0  # the set is read again once it is ttl_s old
    verify_iap(token(private, "k1"), AUDIENCE, request=cache)
    assert certs.calls == 2


def test_a_failed_key_fetch_is_not_kept():
    from shared.desk.access import KeyCache

    answers = iter([503, 200])
    calls = []

    def flaky(url, method="GET", **kwargs):
        calls.append(url)
        return type("Response", (), {"status": next(answers), "data": b"{}", "headers": {}})()

    cache = KeyCache(flaky)
    assert cache("https://keys").status == 503
    assert cache("https://keys").status == 200 and cache("https://keys").status == 200
    assert len(calls) == 2
