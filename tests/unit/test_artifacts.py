"""Encrypted artifacts: round trip, rotation, and refusal of anything tampered or unknown."""

import pytest

from shared.settings import Settings
from shared.training.artifacts import ArtifactError, Keyring, decrypt, encrypt

OLD, NEW = Keyring.new_key(), Keyring.new_key()


def test_round_trip_and_rotation():
    old_ring = Keyring.parse(f"k1:{OLD}")
    rotated = Keyring.parse(f"k2:{NEW},k1:{OLD}")
    old_blob = encrypt(b"model v1", old_ring)
    assert old_blob.startswith(b"RETAIL-ARTIFACT/1 key=k1\n")
    assert decrypt(old_blob, rotated) == b"model v1"  # old artifacts still read
    new_blob = encrypt(b"model v2", rotated)
    assert new_blob.startswith(b"RETAIL-ARTIFACT/1 key=k2\n")  # the newest key encrypts
    assert b"model v2" not in new_blob
    with pytest.raises(ArtifactError, match="key 'k2', which is not configured"):
        decrypt(new_blob, old_ring)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[:-10], "tampered, truncated or wrong key"),
        (lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:], "tampered, truncated or wrong key"),
        (lambda b: b"garbage" + b, "missing or damaged header"),
        (lambda b: b.replace(b"/1 ", b"/9 ", 1), "version 9 is not supported"),
        (lambda b: b[:40], "tampered, truncated or wrong key"),
    ],
)
def test_tampered_or_truncated_artifacts_are_refused(damage, reason):
    ring = Keyring.parse(f"k1:{OLD}")
    with pytest.raises(ArtifactError, match=reason):
        decrypt(damage(encrypt(b"x" * 1000, ring)), ring)


def test_the_wrong_key_under_the_right_id_is_refused():
    blob = encrypt(b"secret model", Keyring.parse(f"k1:{OLD}"))
    with pytest.raises(ArtifactError, match="tampered, truncated or wrong key"):
        decrypt(blob, Keyring.parse(f"k1:{NEW}"))


def test_bad_key_configuration_is_named_without_the_key():
    with pytest.raises(ArtifactError, match="'k1' is not a Fernet key") as err:
        Keyring.parse("k1:not-a-key")
    assert "not-a-key" not in str(err.value)
    with pytest.raises(ArtifactError, match="no artifact keys"):
        Keyring.configured(Settings(project="p-1"))


def test_a_pointer_is_followed_only_to_a_model_of_its_kind_below_the_artifacts():
    """Defect 15: LATEST naming another bucket was followed (the key check still protected
    the model; the pointer is now confined)."""
    from shared.training.artifacts import ArtifactLayout

    layout = ArtifactLayout.of("gs://p-artifacts")
    assert str(layout.pointed("pricing", "gs://p-artifacts/pricing/r1.model")) == (
        "gs://p-artifacts/pricing/r1.model"
    )
    for elsewhere in (
        "gs://attacker-bucket/pricing/r1.model",
        "gs://p-artifacts/promotions/r1.model",  # another kind
        "gs://p-artifacts/pricing/../keys/r1.model",
        "gs://p-artifacts/pricing/deeper/r1.model",
        "gs://p-artifacts/pricing/r1.scores.json",
        "https://p-artifacts/pricing/r1.model",
    ):
        with pytest.raises(ArtifactError, match="pointer"):
            layout.pointed("pricing", elsewhere)
