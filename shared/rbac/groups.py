"""Group membership from the Cloud Identity Groups API, nested groups resolved.

Uses the official discovery client (``googleapiclient``, its bundled ``cloudidentity v1``
document, built by :func:`shared.clients.cloud_identity_service`); locally it points at
``local/cloud_identity.py``, which speaks the same paths and JSON. A group that cannot be read
is reported, not guessed: the reconciler then revokes nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.log import get_logger

log = get_logger("shared.rbac.groups")
MEMBER_TYPES = {"USER", "SERVICE_ACCOUNT"}


@dataclass
class Membership:
    """Resolved members (lower-cased emails) of each requested group, and what failed."""

    members: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed


class GroupsReader:
    """Reads transitive members of groups, breadth-first, each group once (cycles are cut);
    the groups of one level are read in parallel (``workers`` at a time)."""

    def __init__(self, service: Any, retries: int = 2, workers: int = 8) -> None:
        self.service = service
        self.retries = retries
        self.workers = workers
        self.calls = 0
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        self._direct: dict[str, tuple[set[str], set[str]]] = {}

    def _execute(self, request: Any) -> dict:
        with self._lock:
            self.calls += 1
        return request.execute(num_retries=self.retries)

    def _group_name(self, email: str) -> str:
        if email not in self._names:
            found = self._execute(self.service.groups().lookup(**{"groupKey_id": email}))
            self._names[email] = found["name"]
        return self._names[email]

    def _direct_members(self, email: str) -> tuple[set[str], set[str]]:
        """(users and service accounts, nested groups) directly in ``email``."""
        if email in self._direct:
            return self._direct[email]
        parent = self._group_name(email)
        people: set[str] = set()
        groups: set[str] = set()
        token = None
        while True:
            page = self._execute(
                self.service.groups()
                .memberships()
                .list(parent=parent, view="FULL", pageSize=200, pageToken=token)
            )
            for m in page.get("memberships", []):
                key = (m.get("preferredMemberKey") or {}).get("id", "").lower()
                if not key:
                    continue
                kind = m.get("type", "USER")
                if kind == "GROUP":
                    groups.add(key)
                elif kind in MEMBER_TYPES:
                    people.add(key)
            token = page.get("nextPageToken")
            if not token:
                break
        self._direct[email] = (people, groups)
        return people, groups

    def members(self, group: str) -> set[str]:
        """Everyone in ``group`` and its nested groups; raises if any of them cannot be read."""
        found = self.read([group])
        if found.failed:
            raise RuntimeError(found.failed[group])
        return found.members[group]

    def read(self, groups: list[str]) -> Membership:
        """Members of every group; a failure is recorded per group (a group is unread when
        it or any group nested in it could not be read), the others still read."""
        failed: dict[str, str] = {}
        level = sorted({g.lower() for g in groups})
        seen = set(level)
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            while level:
                outcomes = list(pool.map(self._try_direct, level))
                nested: set[str] = set()
                for email, outcome in zip(level, outcomes, strict=True):
                    if isinstance(outcome, str):
                        failed[email] = outcome
                        log.warning("group %s could not be read: %s", email, outcome)
                    else:
                        nested |= outcome[1]
                level = sorted(nested - seen)
                seen |= nested
        result = Membership()
        for group in groups:
            people, closure = self._closure(group.lower())
            broken = sorted(closure & set(failed))
            if broken:
                result.failed[group] = failed[broken[0]] + (
                    f" (nested group {broken[0]})" if broken[0] != group.lower() else ""
                )
            else:
                result.members[group] = people
        result.calls = self.calls
        return result

    def _try_direct(self, email: str) -> tuple[set[str], set[str]] | str:
        try:
            return self._direct_members(email)
        except Exception as exc:  # any failure means "unknown": reported, never guessed
            return f"{type(exc).__name__}: {str(exc)[:200]}"

    def _closure(self, group: str) -> tuple[set[str], set[str]]:
        """(people, groups) reachable from ``group`` through what was read."""
        seen, queue, people = {group}, deque([group]), set()
        while queue:
            direct, nested = self._direct.get(queue.popleft(), (set(), set()))
            people |= direct
            for child in nested - seen:
                seen.add(child)
                queue.append(child)
        return people, seen
