import ast
from pathlib import Path

import pytest

from shared import topology
from shared.settings import Settings, SettingsError


def test_settings_from_env():
    s = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p-123", "RETAIL_MAX_STREAMS": "4"})
    assert s.project == "p-123" and s.max_streams == 4 and s.data_bucket == "p-123-data"
    assert not s.local


def test_settings_name_the_bad_variable():
    with pytest.raises(SettingsError, match="GOOGLE_CLOUD_PROJECT"):
        Settings.from_env({})
    with pytest.raises(SettingsError, match="RETAIL_MAX_STREAMS"):
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p-123", "RETAIL_MAX_STREAMS": "0"})
    with pytest.raises(SettingsError, match="RETAIL_TIME_BUDGET_S"):
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p-123", "RETAIL_TIME_BUDGET_S": "soon"})


def test_every_subscription_targets_an_entry_point_of_functions_main():
    source = (Path(__file__).parents[2] / "functions" / "main.py").read_text()
    defined = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    for sub in topology.SUBSCRIPTIONS:
        assert sub.entry_point in defined
        assert sub.topic in topology.TOPICS
    assert len({s.name for s in topology.SUBSCRIPTIONS}) == len(topology.SUBSCRIPTIONS)
    assert all(len(t) >= 3 for t in topology.TOPICS)  # the emulator's minimum
