from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from campaigns import crypto

# How a serialised passcode (dumpdata, a fixture) is told from a plaintext one by to_python,
# which reads both: the serialiser's output and a value set on the model by hand. No
# passcode Mokugift issues looks like this.
SERIALIZED_PREFIX = "fernet:"


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; reading it without a fitting key raises DecryptionError.

    We do not use django-fernet-encrypted-fields: on a wrong key it hands back the ciphertext
    as if it were the value, which would then be sent to Mokugift as the passcode. An empty
    string stays empty, meaning "not set".

    Serialised (`dumpdata`), the value is its ciphertext behind SERIALIZED_PREFIX, never the
    plaintext; `loaddata` decrypts it back, and the save encrypts it again under the newest key.
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

    def value_to_string(self, obj):
        value = self.value_from_object(obj)
        if value is None or value == "":
            return value
        return SERIALIZED_PREFIX + crypto.encrypt(str(value))

    def to_python(self, value):
        value = super().to_python(value)
        if isinstance(value, str) and value.startswith(SERIALIZED_PREFIX):
            try:
                return crypto.decrypt(value.removeprefix(SERIALIZED_PREFIX))
            except crypto.DecryptionError as error:
                # A dump made under keys this server lacks, or a typed passcode that happens
                # to start with the prefix: either way, not a value to store as it is.
                raise ValidationError(str(error), code="undecryptable") from None
        return value
