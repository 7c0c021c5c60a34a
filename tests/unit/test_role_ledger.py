"""Issue 25, item 3 (in part): the ledger of owned roles cannot be lost silently. A crash while
writing it leaves the old ledger whole, and an unreadable one stops the run with a message
naming it and how to repair it (it said only ``Unterminated string starting at: line 1
column 12``)."""

import json
import os

import pytest

from shared.rbac.ledger import FileRoleLedger, LedgerUnreadable


def test_a_truncated_ledger_stops_the_run_naming_the_file_and_the_repair(tmp_path):
    path = tmp_path / "owned-roles.json"
    path.write_text('{"roles": ["project-pric')  # a write cut short
    ledger = FileRoleLedger(str(path))
    with pytest.raises(LedgerUnreadable) as info:
        ledger.owned()
    message = str(info.value)
    assert str(path) in message and "restore it" in message and "No role is" in message
    path.write_text('{"roles": "project-pricing"}')  # a hand edit of the wrong shape
    with pytest.raises(LedgerUnreadable, match="not a list of role names"):
        ledger.add({"project-new"})
    assert path.read_text() == '{"roles": "project-pricing"}'  # nothing written over it


def test_a_crash_before_the_rename_leaves_the_old_ledger_whole(tmp_path, monkeypatch):
    path = tmp_path / "owned-roles.json"
    ledger = FileRoleLedger(str(path))
    ledger.add({"project-pricing"})
    before = path.read_text()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ledger.add({"project-promotions"})
    assert path.read_text() == before
    assert json.loads(before) == {"roles": ["project-pricing"]}
    assert [p.name for p in tmp_path.iterdir()] == ["owned-roles.json"]  # no temporary left
    monkeypatch.undo()
    ledger.add({"project-promotions"})
    assert ledger.owned() == {"project-pricing", "project-promotions"}
