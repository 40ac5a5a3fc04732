"""The suite runs against a real valetkeyd: tests/tests/e2e/sdk.rs starts
one (with the Secret Service and the test IdP, logged in), grants this
Python interpreter as agent ``py-granted``, and runs pytest with:

* the daemon's environment (``XDG_RUNTIME_DIR`` → the agent socket);
* ``VK_BIN``: the directory with the ``valetkey`` CLI, to decide consents
  as the user would;
* ``VK_PROVIDER``: the provider to ask (``local``, scopes ``repo:read``,
  ``repo:write``, ``issues:read``).
"""

import os
import subprocess

import pytest


@pytest.fixture
def provider() -> str:
    return os.environ.get("VK_PROVIDER", "local")


@pytest.fixture
def cli():
    """Runs the ``valetkey`` CLI (as the user); returns its stdout."""
    bin_dir = os.environ["VK_BIN"]

    def run(*args: str) -> str:
        out = subprocess.run([os.path.join(bin_dir, "valetkey"), *args], capture_output=True, text=True)
        assert out.returncode == 0, f"valetkey {args}: {out.stderr}"
        return out.stdout

    return run
