"""Which module implements each command, in the order `ipsms --help` lists them. A light
table that the app (``ipsms.cli.app``) builds its commands from and the profiles
(``ipsms.cli.profiles``) read the command tree from, without either importing the other."""

import importlib
from typing import Any

# command -> the module of ``ipsms.cli`` that holds it (a function of the module's name, or,
# for a group, its ``app``)
MODULES: dict[str, str] = {
    "listen": "listen",
    "simulate": "simulate",
    "replay": "replay",
    "check": "check",
    "messages": "messages",
    "inspect": "inspect",
    "verify": "verify",
    "set-webhook": "set_webhook",
    "provision": "provision",
    "auth": "auth",
    "api-emulator": "api_emulator",
    "config": "config",
}
GROUPS = ("messages", "auth", "config")  # commands that hold commands


def module(command: str) -> Any:
    """The module of ``command`` (imported now)."""
    return importlib.import_module(f"ipsms.cli.{MODULES[command]}")


def group_app(command: str) -> Any:
    """The typer app of the group ``command`` (imported now)."""
    return module(command).app
