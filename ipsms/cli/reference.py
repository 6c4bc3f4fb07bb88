"""``docs/cli.md``: the CLI reference, generated from the app itself so it cannot drift
(tests/test_docs.py fails when the file is stale). Regenerate with
``python -m ipsms.cli.reference > docs/cli.md``.

Each command's page is its ``--help`` at a fixed width, so the reference says exactly what the
terminal says, examples and exit codes included.
"""

import sys
from collections.abc import Iterator
from typing import Any

WIDTH = 100

HEADER = """# ipsms command reference

Generated from the code by `python -m ipsms.cli.reference > docs/cli.md` (a test fails when
this file is stale): each section is the command's `--help`. Settings come from a flag, then its
environment variable, then the config profile, then the default; see the README for the
settings file, exit codes and troubleshooting.
"""


def _pages(command: Any, path: list[str], parent: Any) -> Iterator[tuple[str, str]]:
    import typer

    ctx = typer.Context(
        command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH
    )
    yield " ".join(path), command.get_help(ctx)
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name in command.list_commands(ctx):
            yield from _pages(command.get_command(ctx, name), [*path, name], ctx)


def pages() -> list[tuple[str, str]]:
    """``("ipsms messages list", its help)`` for the root, every group and every command."""
    import typer.main

    from ipsms.cli.app import app

    return list(_pages(typer.main.get_command(app), ["ipsms"], None))


def markdown() -> str:
    parts = [HEADER]
    pages_ = pages()
    parts.append("\n".join(f"- [`{name}`](#{name.replace(' ', '-')})" for name, _ in pages_) + "\n")
    for name, text in pages_:
        parts.append(
            f'<a id="{name.replace(" ", "-")}"></a>\n## `{name}`\n\n```text\n{text.rstrip()}\n```\n'
        )
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(markdown())
