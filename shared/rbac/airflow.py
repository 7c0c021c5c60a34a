"""A small client for Airflow's role and user API: Airflow 2.10 (``/api/v1``) and Airflow 3
with the FAB auth manager (``/auth/fab/v1``, DAGs on ``/api/v2``), detected at first use.

Differences handled here so the reconciler does not see them: Airflow 3 wants a JWT from
``/auth/token``; 2.10's ``PATCH /roles`` only adds permissions (a removal is
``shared.rbac.switch``'s); ``POST /roles`` answers ``{}``; ``PATCH /users`` needs the full
body; lists page at 100; with a username and password, 2.10 is signed in to once (a session)
rather than sent the password on every call. Reads and writes are counted, and every write
is logged in ``calls.writes_log`` ("METHOD path").
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from shared.errors import PermanentError, TransientError
from shared.log import get_logger

log = get_logger("shared.rbac.airflow")
PAGE = 100
Perm = tuple[str, str]  # (action, resource)
# Airflow 2 sessions signed in to by this process: (url, username) -> cookies.
_SESSIONS: dict[tuple[str, str], dict[str, str]] = {}


@dataclass
class User:
    """An Airflow account. ``email`` is as Airflow stores it (sent back unchanged in every
    write: Airflow checks a changed email's uniqueness); ``person`` is who it belongs to."""

    username: str
    email: str
    roles: set[str]
    first_name: str = ""
    last_name: str = ""

    @property
    def person(self) -> str:
        """The email as Google compares it (case-insensitively): one person may have several
        accounts (Composer's ``accounts.google.com:<id>`` beside one made by hand)."""
        return self.email.lower()


@dataclass
class Calls:
    reads: int = 0
    writes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    writes_log: list[str] = field(default_factory=list)


class AirflowError(PermanentError):
    """Airflow refused a call; the message names the call and Airflow's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NeedsPerson(AirflowError):
    """The change cannot be made without touching what the reconciler must never touch."""


def sign_in_on_form(
    session: requests.Session, url: str, username: str, password: str, timeout_s: float
) -> bool:
    """Sign ``session`` in on Airflow 2's web form, as a browser does (its CSRF token first);
    False when the server offers no such form. Whether it took is for the caller to see."""
    form = session.get(f"{url}/login/", timeout=timeout_s)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
    if form.status_code != 200 or token is None:
        return False
    session.post(
        f"{url}/login/",
        data={"username": username, "password": password, "csrf_token": token[1]},
        timeout=timeout_s,
        allow_redirects=False,
    )
    return True


class AirflowClient:
    """Roles, users, permissions and DAGs of one Airflow, over its REST API."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self._username, self._password, self._token = username, password, token
        self.calls = Calls()
        self._count = threading.Lock()  # users' writes go from several threads
        self.version: int | None = None
        self.probe_attempts = 4
        self.read_workers = 4  # pages of a list read at once

    # ------------------------------------------------------------------ transport

    @property
    def fab(self) -> str:
        """The roles-and-users API's base URL (detected on first use)."""
        self._detect()
        return self._fab

    @property
    def dags_api(self) -> str:
        self._detect()
        return self._dags_api

    def _detect(self) -> None:
        if self.version is not None:
            return
        # Airflow 3 serves its public health check under /api/v2; Airflow 2 has no /api/v2
        # (404). Anything else is not an answer about the version: a 5xx, a 429 or a dropped
        # connection is retried, and if it lasts, reported as it is (never "this is 2").
        last = ""
        for attempt in range(self.probe_attempts):
            if attempt:
                time.sleep(min(2.0**attempt * 0.25, 4.0))
            try:
                probe = self.session.get(f"{self.url}/api/v2/monitor/health", timeout=10)
            except requests.RequestException as exc:
                last = type(exc).__name__
                continue
            if probe.status_code in (200, 404):
                self.version = 3 if probe.status_code == 200 else 2
                break
            last = f"{probe.status_code} {probe.text[:200]}"
            if probe.status_code < 500 and probe.status_code != 429:
                raise AirflowError(f"GET /api/v2/monitor/health (version probe): {last}")
        else:
            raise TransientError(
                f"Airflow at {self.url}: version probe failed {self.probe_attempts} times, "
                f"last: {last}"
            )
        self._fab = f"{self.url}/auth/fab/v1" if self.version == 3 else f"{self.url}/api/v1"
        self._dags_api = f"{self.url}/api/v2" if self.version == 3 else f"{self.url}/api/v1"
        if self._token:
            self.session.headers["Authorization"] = f"Bearer {self._token}"
        elif self.version == 3 and self._username:
            got = self.session.post(
                f"{self.url}/auth/token",
                json={"username": self._username, "password": self._password},
                timeout=self.timeout_s,
            )
            if got.status_code >= 500 or got.status_code == 429:
                raise TransientError(f"POST /auth/token: {got.status_code}")
            if got.status_code >= 300:
                raise AirflowError(f"POST /auth/token: {got.status_code} (check the credentials)")
            self.session.headers["Authorization"] = f"Bearer {got.json()['access_token']}"
        elif self._username and not self._signed_in():
            self.session.auth = (self._username, self._password or "")

    def _signed_in(self) -> bool:
        """Airflow 2 with a username: sign in once on the web form, as a browser does, and
        call the API with that session (its ``session`` auth backend). Basic auth checks the
        password (a deliberately slow hash) on every call: ~0.1 s each where a session call
        takes ~0.015 s. False (basic auth is used) when the webserver offers no such form
        or does not take the session on its API (or rate-limits sign-ins: 5 per 40 s by
        default). A session is kept for the process: the next client reuses it while it
        lasts, so a warm instance signs in once."""
        key = (self.url, self._username or "")
        try:
            if key in _SESSIONS:  # signed in before in this process: that session, if alive
                self.session.cookies.clear()  # an anonymous one (the version probe's) aside
                self.session.cookies.update(_SESSIONS[key])
                if self._probe() == 200:
                    return True
                self.session.cookies.clear()
            form = sign_in_on_form(
                self.session, self.url, self._username or "", self._password or "", self.timeout_s
            )
            if form and self._probe() == 200:
                _SESSIONS[key] = {c.name: c.value or "" for c in self.session.cookies}
                return True
        except requests.RequestException:
            pass
        self.session.cookies.clear()
        return False

    def _probe(self) -> int:
        """The status of a one-role read with the session alone (not counted: sign-in)."""
        url = f"{self._fab}/roles"
        return self.session.get(url, params={"limit": 1}, timeout=self.timeout_s).status_code

    def _call(self, method: str, url: str, kind: str, **kwargs) -> dict:
        self._detect()
        with self._count:
            if method != "GET":
                self.calls.writes += 1
                self.calls.writes_log.append(f"{method} {url.removeprefix(self.url)}")
            else:
                self.calls.reads += 1
            self.calls.by_kind[kind] = self.calls.by_kind.get(kind, 0) + 1
        try:
            response = self.session.request(method, url, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise TransientError(f"{method} {url}: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"{method} {url}: {response.status_code}")
        if response.status_code >= 300:
            try:
                detail = response.json().get("detail") or response.text
            except ValueError:
                detail = response.text
            raise AirflowError(
                f"{method} {url.removeprefix(self.url)}: {response.status_code} {detail}",
                response.status_code,
            )
        return response.json() if response.content and response.content.strip() else {}

    def _pages(self, url: str, key: str, kind: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a paged list: the first page says how many there are, the others
        are read ``read_workers`` at a time (in order)."""

        def page_at(offset: int) -> list[dict]:
            query = {**(params or {}), "limit": PAGE, "offset": offset}
            return self._call("GET", url, kind, params=query).get(key, [])

        first = self._call("GET", url, kind, params={**(params or {}), "limit": PAGE})
        items = first.get(key, [])
        yield from items
        if not items:
            return
        # Stepped by the first page's size: a server may cap ``limit`` below ours.
        offsets = range(len(items), first.get("total_entries", 0), len(items))
        if len(offsets) > 1 and self.read_workers > 1:
            with ThreadPoolExecutor(max_workers=self.read_workers) as pool:
                for page in pool.map(page_at, offsets):
                    yield from page
        else:
            for offset in offsets:
                yield from page_at(offset)

    # ------------------------------------------------------------------ reads

    def roles(self) -> dict[str, set[Perm]]:
        self._detect()
        return {
            r["name"]: {(a["action"]["name"], a["resource"]["name"]) for a in r.get("actions", [])}
            for r in self._pages(f"{self.fab}/roles", "roles", "list_roles")
        }

    def permissions(self) -> set[Perm] | None:
        """Every (action, resource) pair that exists, or None where Airflow lists only actions
        (2.10); roles then reference per-DAG resources only of DAGs that exist."""
        self._detect()
        actions = list(self._pages(f"{self.fab}/permissions", "actions", "list_permissions"))
        if not any("resources" in a for a in actions):
            return None
        return {(a["name"], r["name"]) for a in actions for r in a.get("resources", [])}

    def users(self) -> list[User]:
        self._detect()
        return [
            User(
                username=u["username"],
                email=u.get("email") or "",
                roles={r["name"] for r in u.get("roles") or []},
                first_name=u.get("first_name") or "",
                last_name=u.get("last_name") or "",
            )
            for u in self._pages(f"{self.fab}/users", "users", "list_users")
        ]

    def dags(self) -> dict[str, set[str]]:
        """dag_id -> tags of every DAG Airflow knows."""
        self._detect()
        return {
            d["dag_id"]: {t["name"] for t in d.get("tags") or []}
            for d in self._pages(f"{self.dags_api}/dags", "dags", "list_dags")
        }

    # ------------------------------------------------------------------ writes

    @staticmethod
    def _actions(perms: set[Perm]) -> list[dict]:
        return [{"action": {"name": a}, "resource": {"name": r}} for a, r in sorted(perms)]

    def create_role(self, name: str, perms: set[Perm]) -> None:
        self._call(
            "POST",
            f"{self.fab}/roles",
            "create_role",
            json={"name": name, "actions": self._actions(perms)},
        )

    def delete_role(self, name: str) -> None:
        """Delete role ``name``; one that is already gone counts as deleted."""
        try:
            self._call("DELETE", f"{self.fab}/roles/{quote(name, safe='')}", "delete_role")
        except AirflowError as exc:
            if exc.status != 404:
                raise

    def role(self, name: str) -> set[Perm] | None:
        try:
            found = self._call("GET", f"{self.fab}/roles/{quote(name, safe='')}", "get_role")
        except AirflowError as exc:
            if exc.status == 404:
                return None
            raise
        return {(a["action"]["name"], a["resource"]["name"]) for a in found.get("actions", [])}

    def patch_role(self, name: str, perms: set[Perm]) -> None:
        """PATCH the role's permissions: sets them on Airflow 3, only adds on Airflow 2.10."""
        self._call(
            "PATCH",
            f"{self.fab}/roles/{quote(name, safe='')}",
            "patch_role",
            params={"update_mask": "actions"},
            json={"name": name, "actions": self._actions(perms)},
        )

    def create_user(self, email: str, roles: set[str]) -> None:
        local = email.split("@")[0]
        self._call(
            "POST",
            f"{self.fab}/users",
            "create_user",
            json={
                "username": email,
                "email": email,
                "first_name": local,
                "last_name": "-",
                "roles": [{"name": r} for r in sorted(roles)],
                # Sign-in is through Google on Composer; this password is never used or shown.
                "password": secrets.token_urlsafe(24),
            },
        )

    def set_user_roles(self, user: User, roles: set[str]) -> None:
        """Give ``user`` exactly ``roles`` (no call if that is what it has); updates
        ``user.roles``."""
        if roles == user.roles:
            return
        self._call(
            "PATCH",
            f"{self.fab}/users/{quote(user.username, safe='')}",
            "patch_user",
            params={"update_mask": "roles"},
            json={
                "username": user.username,
                "email": user.email,
                "first_name": user.first_name or user.username,
                "last_name": user.last_name or "-",
                "roles": [{"name": r} for r in sorted(roles)],
            },
        )
        user.roles = set(roles)
