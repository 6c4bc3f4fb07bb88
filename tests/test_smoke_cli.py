from ipsms import __version__
from tests.conftest import run_ipsms


def test_version() -> None:
    result = run_ipsms("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ipsms {__version__}"
