"""The CI dependency audit (.ci/audit.py) against a local stand-in for the OSV API: a
vulnerable dependency fails the audit, an excepted id lets it pass, and every dependency
counts as audited. (The real databases are not reachable from these machines.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("pip_audit")

AUDIT = Path(__file__).resolve().parents[2] / ".ci" / "audit.py"
VULNERABLE = "pyyaml"  # a dev dependency that is always installed
VULN_ID = "PYSEC-0000-TEST"


class FakeOsv(BaseHTTPRequestHandler):
    """Answers OSV's /v1/query: one vulnerability for VULNERABLE, none for the rest."""

    def do_POST(self):
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        vulns = []
        if query["package"]["name"] == VULNERABLE:
            events = [{"introduced": "0"}, {"fixed": "999.0"}]
            affected = {
                "package": {"name": VULNERABLE, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
            vulns = [{"id": VULN_ID, "summary": "test entry", "affected": [affected]}]
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def osv_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOsv)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()


def audit(osv_url: str, exceptions: Path) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, AUDIT_OSV_URL=osv_url, AUDIT_EXCEPTIONS=str(exceptions), AUDIT_STRICT="1"
    )
    return subprocess.run(
        [sys.executable, str(AUDIT)], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_vulnerable_dependency_fails_the_audit(osv_url, tmp_path):
    exceptions = tmp_path / "exceptions.txt"
    exceptions.write_text("# nothing excepted\n")
    done = audit(osv_url, exceptions)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"VULNERABLE {VULNERABLE} " in done.stdout and VULN_ID in done.stdout
    audited, total = done.stdout.split("audit: ")[1].split(" dependencies")[0].split(" of ")
    assert audited == total


def test_an_excepted_vulnerability_passes(osv_url, tmp_path):
    exceptions = tmp_path / "exceptions.txt"
    exceptions.write_text(f"{VULN_ID}  # the test entry, accepted\n")
    done = audit(osv_url, exceptions)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VULNERABLE" not in done.stdout and "1 excepted ids" in done.stdout
