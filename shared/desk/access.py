"""Who may do what on the desk: each person's grant from Google Groups, and who the request is
from, by the signed header Identity-Aware Proxy puts on it.

The mapping is declared (``DeskAccess``, beside the RBAC config) and resolved with the same
group reader that reconciles Airflow (nested groups, a group that cannot be read reported,
never guessed)::

    category_managers: {pricing-dairy@retail.example: [dairy, bakery],
                        pricing-leads@retail.example: ["*"]}       # every category
    store_managers: {store-12@retail.example: [12], franchise-north@retail.example: [1, 4, 7]}
    analysts: [promo-team@retail.example]
    readers: [finance@retail.example]                              # see, never decide

A person in no declared group has no grant: the desk answers 403. A group that cannot be read
grants nothing to anyone through it (the others still do).

Identity: behind IAP every request carries ``x-goog-iap-jwt-assertion``, an ES256 JWT signed by
Google, whose audience is the service IAP fronts; it is verified on every request against
Google's published keys (``IAP_CERTS``, kept a few minutes by ``KeyCache``; locally a
stand-in serving keys in the same JWK format), its issuer, audience and expiry checked, and
the email taken from it. The unsigned ``x-goog-authenticated-user-email`` header is never
read: anyone who reaches the service around the proxy could set it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.log import get_logger

if TYPE_CHECKING:
    from shared.rbac.groups import GroupsReader

log = get_logger("shared.desk.access")

IAP_HEADER = "x-goog-iap-jwt-assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_CERTS = "https://www.gstatic.com/iap/verify/public_key-jwk"
ALL = "*"


class DeskAccess(BaseModel):
    """Groups -> what their members may do on the desk."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    category_managers: dict[str, list[str]] = Field(default_factory=dict)
    store_managers: dict[str, list[int]] = Field(default_factory=dict)
    analysts: list[str] = Field(default_factory=list)
    readers: list[str] = Field(default_factory=list)

    def groups(self) -> list[str]:
        """Every group the mapping names (lower-cased, once each)."""
        named = [*self.category_managers, *self.store_managers, *self.analysts, *self.readers]
        return sorted({g.lower() for g in named})


@dataclass(frozen=True)
class Grant:
    """What one person may do."""

    email: str
    categories: frozenset[str] = frozenset()  # decides prices in these (ALL: every one)
    stores: frozenset[int] = frozenset()  # sees these stores' price lists
    analyst: bool = False  # plans promotions, reads their analytics
    reader: bool = False  # sees everything, decides nothing

    def decides(self, category: str | None) -> bool:
        return ALL in self.categories or (category is not None and category in self.categories)

    def sees_category(self, category: str | None) -> bool:
        return self.reader or self.decides(category)

    def sees_store(self, store: int) -> bool:
        return self.reader or store in self.stores

    @property
    def anything(self) -> bool:
        return bool(self.categories or self.stores or self.analyst or self.reader)


def grants(access: DeskAccess, members: Mapping[str, Iterable[str]]) -> dict[str, Grant]:
    """Every person's grant from ``members`` (group -> its resolved members, lower-cased; a
    group missing from it, unread, grants nothing)."""
    found: dict[str, dict[str, Any]] = {}

    def person(email: str) -> dict[str, Any]:
        return found.setdefault(email.lower(), {"categories": set(), "stores": set(),
                                                "analyst": False, "reader": False})  # fmt: skip

    def of(group: str) -> Iterable[str]:
        return members.get(group.lower(), ())

    for group, categories in access.category_managers.items():
        for email in of(group):
            person(email)["categories"].update(categories)
    for group, stores in access.store_managers.items():
        for email in of(group):
            person(email)["stores"].update(stores)
    for group in access.analysts:
        for email in of(group):
            person(email)["analyst"] = True
    for group in access.readers:
        for email in of(group):
            person(email)["reader"] = True
    return {
        email: Grant(email, frozenset(g["categories"]), frozenset(g["stores"]), g["analyst"],
                     g["reader"])
        for email, g in found.items()
    }  # fmt: skip


class GroupGrants:
    """Everyone's grant, read from Google Groups (a fresh ``GroupsReader`` from ``reader``
    each time, nested groups resolved) and kept ``ttl_s`` seconds: a person added to or
    removed from a group gains or loses the desk within that time. A group that cannot be read
    grants nothing through it until it can (logged), the others still do."""

    def __init__(
        self,
        access: DeskAccess,
        reader: Callable[[], GroupsReader],
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access, self.reader, self.ttl_s, self.clock = access, reader, ttl_s, clock
        self._grants: dict[str, Grant] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self.reads = 0

    def __call__(self) -> dict[str, Grant]:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_s:
                found = self.reader().read(self.access.groups())
                self.reads += 1
                for group, why in found.failed.items():
                    log.warning("desk: group %s could not be read, it grants nothing: %s",
                                group, why)  # fmt: skip
                self._grants, self._read_at = grants(self.access, found.members), now
            return self._grants


class KeyCache:
    """IAP's public keys for ``verify_iap``, fetched once per ``ttl_s``: a transport, as
    ``id_token.verify_token`` takes one, that answers a key set it fetched (status 200) from
    memory until it is ``ttl_s`` old. Without it every request to the desk fetched Google's
    keys first. IAP publishes a key before it signs with it, so a new one is read in time."""

    def __init__(
        self,
        transport: Any = None,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport, self.ttl_s, self.clock = transport, ttl_s, clock
        self._found: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        with self._lock:
            hit = self._found.get(url)
            if hit is not None and self.clock() - hit[0] < self.ttl_s:
                return hit[1]
        if self.transport is None:
            import google.auth.transport.requests

            self.transport = google.auth.transport.requests.Request()
        response = self.transport(url=url, method=method, **kwargs)
        if response.status == 200:
            with self._lock:
                self._found[url] = (self.clock(), response)
        return response


class IdentityError(Exception):
    """The request's identity could not be established (answered 401)."""


def verify_iap(
    token: str | None,
    audience: str,
    *,
    certs_url: str = IAP_CERTS,
    request: Any = None,
) -> str:
    """The email in a signed IAP header, after checking its signature (ES256, Google's keys at
    ``certs_url``), issuer, audience (``/projects/<number>/global/backendServices/<id>``, or
    ``/projects/<number>/apps/<project>``, or for IAP on a Cloud Run service
    ``/projects/<number>/locations/<region>/services/<name>``) and expiry; ``IdentityError``
    otherwise. ``request``: the transport the keys are fetched with (``KeyCache``)."""
    import google.auth.transport.requests
    import jwt
    from google.auth import exceptions as auth_errors
    from google.oauth2 import id_token

    if not token:
        raise IdentityError(f"no {IAP_HEADER} header: the desk is reached through IAP only")
    transport = request or google.auth.transport.requests.Request()
    try:
        claims = id_token.verify_token(token, transport, audience=audience, certs_url=certs_url)
    except (ValueError, auth_errors.GoogleAuthError, jwt.PyJWTError) as exc:
        raise IdentityError(f"the IAP assertion is not valid: {exc}") from None
    if not isinstance(claims.get("exp"), int | float):
        raise IdentityError("the IAP assertion has no expiry")
    if claims.get("iss") != IAP_ISSUER:
        raise IdentityError(f"the IAP assertion's issuer is {claims.get('iss')!r}")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise IdentityError("the IAP assertion names no email")
    return email.lower()
