"""What the commands that call IntelePeer's API share (``set-webhook``, ``provision``, and
``listen --set-webhook``): the dry run's printout and the CPaaS warning, shown once."""

import json
from typing import TYPE_CHECKING

from ipsms.cli.io import current, emit
from ipsms.cli.options import OutputFormat

if TYPE_CHECKING:
    from ipsms.intelepeer.client import PreparedRequest
    from ipsms.intelepeer.credentials import AuthSource

DRY_RUN_TOKEN = "TOKEN"  # stands in for the token in --dry-run; shown masked anyway


def warn_cpaas_once(api: str, auth: "AuthSource", command: str = "set-webhook") -> None:
    """After a change went through (``ipsms set-webhook``, or ``ipsms listen --set-webhook``):
    the CPaaS warning, the first time for this API base and account. Hidden by --quiet, and
    then not remembered as shown."""
    import hashlib

    from ipsms.intelepeer.credentials import StaticToken
    from ipsms.intelepeer.webhooks import CPAAS_WARNING, CpaasWarnings

    env = current()
    if env.quiet:
        return
    account = (
        f"token:{hashlib.sha256(auth.token.encode()).hexdigest()[:16]}"
        if isinstance(auth, StaticToken)
        else auth.username
    )
    warned = CpaasWarnings()
    if warned.due(api, account):
        env.notice(
            f"ipsms {command}: warning: {CPAAS_WARNING} (shown once for this API and account)"
        )
        warned.mark(api, account)


def show_dry_run(requests: "list[PreparedRequest]", fmt: OutputFormat) -> None:
    from ipsms.text import printable

    for request in requests:
        shown = request.shown()
        lines = [
            f"{shown['method']} {shown['url']}",
            *(f"{k}: {v}" for k, v in shown["headers"].items()),
            "",
            json.dumps(shown["body"], ensure_ascii=False),
        ]
        emit(
            fmt is OutputFormat.json,
            {"type": "dry_run", **shown},
            "\n".join(printable(x) for x in lines),
        )
    current().err("ipsms: dry run: nothing was sent")
