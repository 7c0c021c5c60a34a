"""Group membership from the Cloud Identity Groups API, nested groups resolved.

Uses the official discovery client (``googleapiclient``, its bundled ``cloudidentity v1``
document, built by :func:`shared.clients.cloud_identity_service`); locally it points at
``local/cloud_identity.py``, which speaks the same paths and JSON. A group that cannot be read
is reported, not guessed: the reconciler then revokes nothing.
"""

from __future__ import annotations

from collections import deque
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
    """Reads transitive members of groups, breadth-first, each group once (cycles are cut)."""

    def __init__(self, service: Any, retries: int = 2) -> None:
        self.service = service
        self.retries = retries
        self.calls = 0
        self._names: dict[str, str] = {}
        self._direct: dict[str, tuple[set[str], set[str]]] = {}

    def _execute(self, request: Any) -> dict:
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
        seen = {group.lower()}
        queue = deque([group.lower()])
        found: set[str] = set()
        while queue:
            people, nested = self._direct_members(queue.popleft())
            found |= people
            for child in sorted(nested - seen):
                seen.add(child)
                queue.append(child)
        return found

    def read(self, groups: list[str]) -> Membership:
        """Members of every group; a failure is recorded per group, the others still read."""
        result = Membership()
        for group in groups:
            try:
                result.members[group] = self.members(group)
            except Exception as exc:  # any failure means "unknown": reported, never guessed
                result.failed[group] = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("group %s could not be read: %s", group, result.failed[group])
        result.calls = self.calls
        return result
