from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from audit.models import AuditEvent, Kind
from campaigns.crypto import DecryptionError
from campaigns.models import Campaign
from campaigns.services import campaign_create, campaigns_rotate_encryption_keys

SECRET = "tr33s-are-gr8-passcode"


def _campaign(campaign_id: str = "c-1", passcode: str = SECRET) -> Campaign:
    return campaign_create(
        actor=None, name="Spring", campaign_id=campaign_id, environment="sandbox", passcode=passcode
    )


def _raw_row(pk: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM campaigns_campaign WHERE id = %s", [pk])
        return cursor.fetchone()


def _blank_passcodes() -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE campaigns_campaign SET passcode = ''")


@pytest.mark.django_db
def test_the_raw_row_holds_no_trace_of_the_passcode():
    campaign = _campaign()
    row = " ".join(str(value) for value in _raw_row(campaign.pk))
    assert SECRET not in row
    for i in range(len(SECRET) - 5):  # nor any six characters of it
        assert SECRET[i : i + 6] not in row
    assert Campaign.objects.get(pk=campaign.pk).passcode == SECRET


@pytest.mark.django_db
def test_a_wrong_key_raises_an_error_naming_the_setting_never_the_ciphertext():
    campaign = _campaign()
    ciphertext = next(v for v in _raw_row(campaign.pk) if isinstance(v, str) and v.startswith("gA"))
    wrong_key = Fernet.generate_key().decode()
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[wrong_key]),
        pytest.raises(DecryptionError) as excinfo,
    ):
        Campaign.objects.get(pk=campaign.pk)
    message = str(excinfo.value)
    assert "FIELD_ENCRYPTION_KEYS" in message
    assert ciphertext not in message and ciphertext[:20] not in message
    assert SECRET not in message
    assert excinfo.value.__cause__ is None


@pytest.mark.django_db
def test_rotation_leaves_every_passcode_readable_under_the_new_key_alone(settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    passcodes = {f"c-{i}": f"passcode-{i}" for i in range(7)}
    for campaign_id, passcode in passcodes.items():
        _campaign(campaign_id, passcode)
    new_key = Fernet.generate_key().decode()

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert campaigns_rotate_encryption_keys(batch_size=3) == 7

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    readable = {c.campaign_id: c.passcode for c in Campaign.objects.all()}
    assert readable == passcodes


@pytest.mark.django_db
def test_rotation_refuses_a_passcode_no_key_fits(settings):
    _campaign()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError, match="FIELD_ENCRYPTION_KEYS"):
        campaigns_rotate_encryption_keys()


@pytest.mark.django_db
def test_the_rotate_command_says_how_many_it_did(settings):
    from io import StringIO

    from django.core.management import call_command

    _campaign("a")
    _campaign("b")
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 2 passcode(s)" in out.getvalue()


@pytest.mark.django_db
def test_rotation_leaves_one_key_rotated_event_per_campaign_holding_no_passcode(settings):
    passcodes = {f"c-{i}": f"passcode-{i}" for i in range(7)}
    for campaign_id, passcode in passcodes.items():
        _campaign(campaign_id, passcode)
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]

    campaigns_rotate_encryption_keys(batch_size=3)  # three batches, the last one short

    rotated = AuditEvent.objects.filter(kind=Kind.KEY_ROTATED)
    assert sorted(rotated.values_list("campaign__campaign_id", flat=True)) == sorted(passcodes)
    assert {event.actor for event in rotated} == {None}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM audit_auditevent WHERE kind = %s",
            [Kind.KEY_ROTATED.value],
        )
        rows = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert not any(passcode in rows for passcode in passcodes.values())
    assert "gAAAA" not in rows  # nor a Fernet ciphertext of one


def _dump(*labels: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("dumpdata", *labels, indent=1, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_dumpdata_writes_the_passcode_encrypted_and_loaddata_reads_it_back(settings, tmp_path):
    from django.core.management import call_command

    campaign = _campaign(passcode="Zq7tr33sWk9x")
    other = _campaign("c-2", passcode="another-s3cret")
    for output in ("json", "xml", "jsonl"):
        dump = _dump("campaigns", "--format", output)
        assert "another-s3cret" not in dump
        for i in range(len("Zq7tr33sWk9x") - 5):  # nor any six characters of it
            assert "Zq7tr33sWk9x"[i : i + 6] not in dump
        assert "fernet:gAAAA" in dump

    path = tmp_path / "campaigns.json"
    path.write_text(_dump("campaigns"))
    _blank_passcodes()  # the trail keeps the campaigns themselves: loaddata writes over them
    # Loaded on a server whose keys were rotated since: the old key is still among them.
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    call_command("loaddata", str(path), verbosity=0)

    assert Campaign.objects.get(pk=campaign.pk).passcode == "Zq7tr33sWk9x"
    assert Campaign.objects.get(pk=other.pk).passcode == "another-s3cret"
    row = " ".join(str(value) for value in _raw_row(campaign.pk))
    assert "Zq7tr33sWk9x" not in row and "fernet:" not in row


@pytest.mark.django_db
def test_loaddata_refuses_a_passcode_no_key_fits_instead_of_storing_its_ciphertext(
    settings, tmp_path
):
    from django.core.management import call_command
    from django.core.serializers.base import DeserializationError

    campaign = _campaign()
    path = tmp_path / "campaigns.json"
    path.write_text(_dump("campaigns.campaign"))
    _blank_passcodes()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(DeserializationError, match="FIELD_ENCRYPTION_KEYS"):
        call_command("loaddata", str(path), verbosity=0)
    assert Campaign.objects.get(pk=campaign.pk).passcode == ""


@pytest.mark.django_db
def test_rotation_re_encrypts_webhook_secrets_and_two_factor_secrets_too(
    settings, admin_user, marketer, client
):
    """The README's rotation (the new key first, the command, then the old key removed) left
    the webhook secrets and the admins' two-factor secrets under the removed key: every
    delivery failed, and no admin could sign in."""
    from io import StringIO

    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from django.core.management import call_command
    from django.urls import reverse

    from tests.conftest import PASSWORD, totp_code
    from webhooks.models import Endpoint

    _campaign("a")
    secrets = (
        "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
        "whsec_" + "WllYV1ZVVFNSUVBPTk1MS0pJSEdGRURD",
    )
    # During a rotation's overlap: the secret and the previous one.
    Endpoint.objects.create(
        url="https://crm.example.com/hooks", events=["batch.finished"], secret=secrets[0],
        previous_secret=secrets[1],
    )  # fmt: skip
    codes = RecoveryCodes.activate(admin_user).get_unused_codes()
    # Recovery codes brought from another system: allauth keeps each encrypted on its own.
    from campaigns import crypto

    Authenticator.objects.create(
        user=marketer,
        type="recovery_codes",
        data={"migrated_codes": [crypto.encrypt("1234-5678"), crypto.encrypt("8765-4321")]},
    )
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 1 passcode(s), 1 webhook secret(s) and 3 two-factor secret(s)" in (
        out.getvalue()
    )

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    endpoint = Endpoint.objects.get()
    assert (endpoint.secret, endpoint.previous_secret) == secrets
    recovery = Authenticator.objects.get(user=admin_user, type="recovery_codes")
    assert recovery.wrap().get_unused_codes() == codes
    migrated = Authenticator.objects.get(user=marketer, type="recovery_codes")
    assert migrated.wrap().get_unused_codes() == ["1234-5678", "8765-4321"]
    # And the admin signs in with the authenticator app's code.
    client.post(reverse("account_login"), {"login": admin_user.username, "password": PASSWORD})
    signed_in = client.post(reverse("mfa_authenticate"), {"code": totp_code()})
    assert signed_in.status_code == 302 and "_auth_user_id" in client.session
