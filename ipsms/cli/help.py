"""How every command's help ends: its examples, one per line, then its exit codes.

Click rewraps a help paragraph to the terminal unless the paragraph starts with ``\\b``; these
paragraphs start with it, so an example stays one line that can be copied, and each exit code
has a line of its own. Light on purpose: every command module imports it at start-up.
"""


def epilog(*examples: str, exit_codes: tuple[tuple[int, str], ...] = (), note: str = "") -> str:
    parts = ["\b\nExamples:\n" + "\n".join(f"  {example}" for example in examples)]
    if exit_codes:
        parts.append(
            "\b\nExit codes:\n"
            + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in exit_codes)
        )
    if note:
        parts.append(note)
    return "\n\n".join(parts)


OK = (0, "success")
USAGE = (2, "usage error: a bad option, argument or input value")
DELIVERY = ((0, "every message was delivered"), (5, "a message was not delivered"), USAGE)
ALL_EXIT_CODES = (
    (0, "success (listen: stopped by Ctrl-C, SIGTERM or SIGHUP)"),
    (1, "internal error: rerun with --debug and report it"),
    USAGE,
    (3, "state: the state home or message store cannot be used"),
    (4, "network: cannot bind a port or reach a server"),
    (5, "not delivered (simulate, replay)"),
    (6, "signature invalid (verify)"),
    (7, "IntelePeer's API refused the request"),
    (8, "authentication: missing or wrong credentials"),
    (9, "tunnel: the ngrok agent is missing, refused or failed"),
    (10, "not found: no such message, number or history entry"),
    (11, "a check failed (check)"),
    (130, "interrupted by Ctrl-C"),
)
