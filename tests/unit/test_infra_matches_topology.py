"""Topic and subscription names are declared once in code and once in Terraform: same names."""

from pathlib import Path

import hcl2
from hcl2 import SerializationOptions

from shared import topology

INFRA = Path(__file__).parents[2] / "infra"


def terraform_locals() -> dict:
    merged: dict = {}
    for path in INFRA.glob("*.tf"):
        with path.open() as f:
            doc = hcl2.load(
                f,
                serialization_options=SerializationOptions(
                    strip_string_quotes=True, explicit_blocks=False
                ),
            )
        for block in doc.get("locals", []):
            merged.update(block)
    return merged


def test_topics_match():
    assert sorted(terraform_locals()["topics"]) == sorted(topology.TOPICS)


def test_push_subscriptions_match():
    declared = terraform_locals()["push_subscriptions"]
    assert set(declared) == {s.name for s in topology.SUBSCRIPTIONS}
    for sub in topology.SUBSCRIPTIONS:
        tf = declared[sub.name]
        assert (tf["topic"], tf["entry_point"]) == (sub.topic, sub.entry_point)
        assert int(tf["ack_deadline_s"]) == sub.ack_deadline_s


def test_function_requirements_match_pyproject():
    """The deployed functions install the same ranges the project is tested with."""
    import tomllib

    root = INFRA.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (root / "functions" / "requirements.txt").read_text().splitlines()
    deployed = [line for line in lines if line and not line.startswith("#")]
    assert sorted(deployed) == sorted(d for d in project if not d.startswith("tqdm"))
