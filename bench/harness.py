"""What the benches that start the platform share: a free port, the CLI, an admin's API token."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_runner(env: dict[str, str], timeout: float = 300) -> Callable[..., str]:
    """``cli("init")``: run ``python -m nurture_mail`` with ``env``; its stdout, or exit with its stderr."""
    def cli(*argv: str) -> str:
        result = subprocess.run([PY, "-m", "nurture_mail", *argv], env=env, cwd=ROOT, capture_output=True,
                                text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout
    return cli


def admin_token(cli: Callable[..., str], email: str = "bench@northwind.example") -> str:
    """Create an admin without a password and return a new API token of theirs."""
    cli("create-user", email, "--role", "admin", "--no-password")
    issued = cli("create-token", email, "--name", "bench")
    match = re.search(r"^(nm_[A-Za-z0-9_-]+)\s*$", issued, re.MULTILINE)
    if match is None:
        raise SystemExit(f"create-token printed no token: {issued!r}")
    return match[1]
