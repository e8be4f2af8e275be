from __future__ import annotations

from django.db import models

from campaigns import crypto


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; reading it without a fitting key raises DecryptionError.

    We do not use django-fernet-encrypted-fields: on a wrong key it hands back the ciphertext
    as if it were the value, which would then be sent to Mokugift as the passcode. An empty
    string stays empty, meaning "not set".
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(value)
