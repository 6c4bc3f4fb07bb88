"""A card as data: one NDJSON ``check`` object per check, and JUnit XML for CI.

JUnit: one ``testcase`` per check, named by its id; a failed check holds a ``failure`` whose
text is the evidence and the reproduction command, a skipped one a ``skipped`` with the reason,
a warning passes with the warning in ``system-out``. XML 1.0 cannot hold control characters
or lone surrogates, so every text is written through ``printable`` (visible escapes).
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ipsms.check.cards import CHECKS, CheckDef
from ipsms.check.runner import Card, Evidence, Result, Verdict
from ipsms.text import printable

SUITE = "ipsms check"


def result_dict(card: Card, result: Result) -> dict[str, Any]:
    """The NDJSON ``check`` object (docs/ndjson.md)."""
    return {
        "type": "check",
        "id": result.id,
        "result": result.verdict.value,
        "rule": result.check.rule,
        "passes_when": result.check.passes,
        "did": result.did,
        "reason": result.reason,
        "reproduce": result.reproduce,
        "url": card.url,
        "elapsed_ms": round(result.elapsed * 1000, 3),
        "evidence": [e.to_dict() for e in result.evidence],
    }


def evidence_text(evidence: Evidence) -> str:
    parts = [f"{evidence.case}: {evidence.answer()} in {evidence.latency * 1000:.1f} ms"]
    if evidence.refid:
        parts.append(f"refid {evidence.refid}")
    if evidence.response:
        parts.append(f"answer: {evidence.response!r}")
    return printable(", ".join(parts))


def failure_text(result: Result) -> str:
    lines = [printable(result.did), ""]
    lines += [evidence_text(e) for e in result.evidence]
    if result.reproduce:
        lines += ["", "reproduce: " + printable(result.reproduce)]
    return "\n".join(lines)


def junit(card: Card, *, error: str | None = None, checks: tuple[CheckDef, ...] = CHECKS) -> bytes:
    """The card as JUnit XML. ``error``: the run itself could not be made (a bad option, the
    app out of reach); every check of ``checks`` without a result gets it as its error."""
    by_id = {r.id: r for r in card.results}
    ids = [r.id for r in card.results] or [c.id for c in checks]
    cases = []
    counts = {"failures": 0, "skipped": 0, "errors": 0}
    for check_id in ids:
        result = by_id.get(check_id)
        case = ET.Element(
            "testcase",
            classname="ipsms.check",
            name=check_id,
            time=f"{result.elapsed if result else 0:.3f}",
        )
        if result is None:
            counts["errors"] += 1
            node = ET.SubElement(case, "error", message=printable(error or "not run"))
            node.text = printable(error or "not run")
        elif result.verdict is Verdict.FAILED:
            counts["failures"] += 1
            node = ET.SubElement(case, "failure", message=printable(result.did), type=check_id)
            node.text = failure_text(result)
        elif result.verdict is Verdict.SKIPPED:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=printable(result.reason or result.did))
        else:
            out = ET.SubElement(case, "system-out")
            prefix = "warning: " if result.verdict is Verdict.WARNING else ""
            out.text = prefix + failure_text(result)
        cases.append(case)
    suites = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=SUITE,
        tests=str(len(cases)),
        failures=str(counts["failures"]),
        errors=str(counts["errors"]),
        skipped=str(counts["skipped"]),
        time=f"{card.elapsed:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="url", value=printable(card.url))
    if card.unreachable or error:
        ET.SubElement(
            props, "property", name="error", value=printable(error or card.unreachable or "")
        )
    suite.extend(cases)
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(path: Path, data: bytes) -> None:
    """Write the report whole or not at all (a CI job never uploads half a file)."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=".ipsms-junit-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
