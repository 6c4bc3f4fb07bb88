"""One exit code for a missing store: every command that reads the store exits 10 (nothing
recorded there yet) and creates nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipsms.errors import ExitCode
from ipsms.store.recorder import Recorder
from tests.conftest import run_ipsms

REFID = "ABCDEF1234567890ABCDEF1234567890"


@pytest.mark.parametrize(
    "args",
    [
        ("messages", "list"),
        ("messages", "show", REFID),
        ("messages", "export"),
        ("messages", "clear", "--yes"),
        ("replay", REFID),
        ("replay", "--all"),
        ("verify", "--secret", "s", "--refid", REFID),
    ],
    ids=" ".join,
)
def test_a_missing_store_is_exit_10_for_every_reader(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "absent.sqlite3"
    result = run_ipsms(*args, "--db", str(db))
    assert result.returncode == ExitCode.NOT_FOUND, result.stderr
    assert f"no message store at {db}" in result.stderr
    assert not db.exists()


async def test_a_recorder_has_one_owner(tmp_path: Path) -> None:
    async with Recorder(tmp_path / "r.sqlite3") as recorder:
        with pytest.raises(RuntimeError, match="twice"):
            await recorder.start()
