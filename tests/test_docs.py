"""ARCHITECTURE.md stays true: every path and every dotted name it puts in backticks exists in
the tree, every setting it names is one, and its state diagram has the ledger's states."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from django.conf import settings

from rewards.models import Send

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
README = ROOT / "README.md"
SETTINGS = ROOT / "mokudash" / "settings.py"

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")
_PATH_SUFFIXES = (".py", ".md", ".html", ".js", ".css", ".toml", ".txt", ".yaml", ".yml", ".json")
_ROOT_FILES = {"Makefile", "Procfile", "LICENSE"}
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_SETTING = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def _resolves(name: str) -> bool:
    """`package.module.attribute...`: the longest prefix that imports, then getattr for the
    rest (a class, a function, a class's attribute)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def problems(text: str) -> list[str]:
    """What the backticked names of `text` point at that is not there. Code blocks and
    anything with a space (a command line) are left alone, and so is a URL (`/...`)."""
    found = []
    for token in _CODE.findall(_FENCE.sub("", text)):
        if " " in token or token.startswith("/"):
            continue
        if "/" in token or token.endswith(_PATH_SUFFIXES) or token in _ROOT_FILES:
            if not (ROOT / token).exists():
                found.append(f"no file or folder {token}")
        elif _DOTTED.fullmatch(token.removesuffix("()")):
            if not _resolves(token.removesuffix("()")):
                found.append(f"nothing is called {token}")
        elif _SETTING.fullmatch(token) and not hasattr(settings, token):
            found.append(f"no setting {token}")
    return found


def test_architecture_names_only_files_names_and_settings_that_exist():
    found = problems(ARCHITECTURE.read_text())
    assert not found, "ARCHITECTURE.md names what is not there:\n" + "\n".join(found)


def test_the_check_reports_a_made_up_file_name_or_setting():
    text = (
        "`rewards/services/sending.py` and `rewards.services.sending.batch_create()`, "
        "`rewards.models.Send.State.UNKNOWN`, `MOKUGIFT_CHUNK_SIZE`, `make run`: all there. "
        "`rewards/services/mailing.py`, `rewards.services.sending.batch_mail`, "
        "`rewards.mailing.send`, `rewards.models.Send.State.LOST`, `MOKUGIFT_MAIL_SIZE`: not.\n"
        "```\n`rewards/in/a/code/block.py`\n```\n"
    )
    assert problems(text) == [
        "no file or folder rewards/services/mailing.py",
        "nothing is called rewards.services.sending.batch_mail",
        "nothing is called rewards.mailing.send",
        "nothing is called rewards.models.Send.State.LOST",
        "no setting MOKUGIFT_MAIL_SIZE",
    ]


def test_the_state_diagram_has_exactly_the_ledger_states():
    diagram = re.search(r"```mermaid\n(.*?)```", ARCHITECTURE.read_text(), re.DOTALL)
    assert diagram is not None
    states = set()
    for line in diagram.group(1).splitlines():
        if "-->" in line:
            ends = line.split(":", 1)[0].split("-->")
            states.update(end.strip() for end in ends)
    assert states - {"[*]"} == set(Send.State.values)


def test_the_readme_documents_every_setting_read_from_the_environment():
    """Each variable settings.py reads has its row in one of the README's settings tables."""
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS.read_text()))
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", README.read_text(), re.MULTILINE))
    assert len(read) > 40, read
    assert not read - rows, f"settings with no row in README.md: {sorted(read - rows)}"
