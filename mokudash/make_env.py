"""Print .env.example with fresh secrets filled in: `python -m mokudash.make_env .env.example`."""

import secrets
import sys

from cryptography.fernet import Fernet


def main(example: str) -> None:
    fresh = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    with open(example) as f:
        for line in f:
            name = line.split("=", 1)[0]
            if name in fresh and line.strip() == f"{name}=":
                line = f"{name}={fresh[name]}\n"
            sys.stdout.write(line)


if __name__ == "__main__":
    main(sys.argv[1])
