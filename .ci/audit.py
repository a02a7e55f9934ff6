"""Dependency audit: pip-audit over the project's virtualenv, with an exception list.

    python .ci/audit.py                   # report; fail on a vulnerability not excepted
    AUDIT_STRICT=1 python .ci/audit.py    # also fail when a dependency could not be audited
    AUDIT_OSV_URL=http://mirror/v1/query python .ci/audit.py   # ask an OSV API instead of PyPI

pip-audit looks each installed version up in a vulnerability database (PyPI's per-version
JSON API, or OSV). Where that database cannot be reached it marks the dependency
"could not be audited" and still prints "No known vulnerabilities found"; this script
counts those and says plainly how much of the environment was really audited.

Exceptions live in .ci/audit-exceptions.txt: one vulnerability id a line, then "#" and
why it is accepted (e.g. the vulnerable code path is not used) and until when.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

EXCEPTIONS = Path(
    os.environ.get("AUDIT_EXCEPTIONS", Path(__file__).with_name("audit-exceptions.txt"))
)


def excepted_ids(path: Path = EXCEPTIONS) -> list[str]:
    ids = []
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            ids.append(entry)
    return ids


def run_pip_audit(ignored: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--progress-spinner",
            "off",
        ]
        command += ["--format", "json", "--output", str(report)]
        if osv_url := os.environ.get("AUDIT_OSV_URL"):
            command += ["--vulnerability-service", "osv", "--osv-url", osv_url]
        for vuln_id in ignored:
            command += ["--ignore-vuln", vuln_id]
        done = subprocess.run(command, capture_output=True, text=True)
        if not report.exists():
            sys.exit(f"pip-audit failed (exit {done.returncode}):\n{done.stderr}")
        return json.loads(report.read_text())


def main() -> int:
    ignored = excepted_ids()
    # this project itself is installed editable (-e .) and is not on any index
    dependencies = [
        d
        for d in run_pip_audit(ignored)["dependencies"]
        if "editable" not in d.get("skip_reason", "")
    ]
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = len(dependencies) - len(skipped)
    print(
        f"audit: {audited} of {len(dependencies)} dependencies audited, {len(ignored)} excepted ids"
    )
    for dep in vulnerable:
        ids = ", ".join(v["id"] for v in dep["vulns"])
        print(f"VULNERABLE {dep['name']} {dep['version']}: {ids}")
    if skipped:
        print(f"AUDIT INCOMPLETE: {len(skipped)} dependencies could not be audited:")
        for dep in skipped[:5]:
            print(f"  {dep['skip_reason']}")
        if len(skipped) > 5:
            print(f"  ... and {len(skipped) - 5} more: the vulnerability database is out of reach")
    if vulnerable:
        return 1
    if skipped and os.environ.get("AUDIT_STRICT") == "1":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
