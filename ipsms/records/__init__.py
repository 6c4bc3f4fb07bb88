"""The read side: what ``listen`` recorded, queried, followed, exported (redacted or not) and
verified. Everything works on the store (``ipsms.store``) and returns plain data (rows and
JSON-ready dicts); rendering is ``ipsms.ui.messages`` and the CLI's job. Export streams rows
from a cursor, so a large store is never loaded into memory.

The names below are the read side's API: ``from ipsms import records``, then
``records.list_newest(...)``.
"""

from ipsms.records.export import (
    detail_dict,
    export_dict,
    redact_body,
    redacted_dict,
    redacted_text,
    show_document,
    summary_dict,
)
from ipsms.records.follow import FOLLOW_BATCH, Follower, wait_interval
from ipsms.records.query import (
    AMBIGUOUS_SHOWN,
    DEFAULT_LIMIT,
    VERDICTS,
    AmbiguousRefid,
    ExportOptions,
    Filter,
    ListQuery,
    NumberMatch,
    RefidNotFound,
    StoreMissing,
    attempts,
    clear_all,
    count_all,
    export_rows,
    list_newest,
    list_recent,
    opened,
    parse_moment,
    parse_number,
    parse_statuses,
    parse_verdicts,
    resolve_refid,
)

__all__ = [
    "AMBIGUOUS_SHOWN",
    "DEFAULT_LIMIT",
    "FOLLOW_BATCH",
    "VERDICTS",
    "AmbiguousRefid",
    "ExportOptions",
    "Filter",
    "Follower",
    "ListQuery",
    "NumberMatch",
    "RefidNotFound",
    "StoreMissing",
    "attempts",
    "clear_all",
    "count_all",
    "detail_dict",
    "export_dict",
    "export_rows",
    "list_newest",
    "list_recent",
    "opened",
    "parse_moment",
    "parse_number",
    "parse_statuses",
    "parse_verdicts",
    "redact_body",
    "redacted_dict",
    "redacted_text",
    "resolve_refid",
    "show_document",
    "summary_dict",
    "wait_interval",
]
