"""What a wrong signature costs against a right one, for a 1 MiB message (auto mode).

    .venv/bin/python bench/bench_reject.py [--compare-rev REV]

A poster must not be able to make the listener work much harder by signing wrongly: the
mismatch explainer's near-miss checks are bounded. Reports the median of 7 runs of each
verification, in-process, and the ratios to a valid HMAC; with --compare-rev, the same for
ipsms as of that git revision, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MEASURE = """
import json, statistics, sys, time
from ipsms.signature import Mode, Verifier, compute_hmac
secret, refid, msg = "the-shared-secret", "ABCDEF1234567890ABCDEF1234567890", "x" * (1 << 20)
verifier = Verifier(secret, Mode.AUTO)
def median_ms(signature):
    runs = []
    for _ in range(7):
        start = time.perf_counter()
        verifier.verify(refid, msg, signature)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1e3
valid = median_ms(compute_hmac(secret, refid, msg))
out = {"valid_hmac_ms": valid, "valid_plain_ms": median_ms(secret)}
for name, sig in (("wrong_hex64", "f" * 64), ("wrong_text", "WRONG SECRET"),
                  ("wrong_upper_hex", compute_hmac(secret, refid, msg).upper())):
    out[name + "_ms"] = median_ms(sig)
    out[name + "_x_valid"] = out[name + "_ms"] / valid
print(json.dumps({k: round(v, 3) for k, v in out.items()}))
"""


def measure(tree: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE], cwd=tree, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare-rev", metavar="REV")
    args = ap.parse_args()
    result = {"current": measure(ROOT)}
    if args.compare_rev:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(
                ["git", "archive", args.compare_rev, "ipsms"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            result[args.compare_rev] = measure(Path(tmp))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
