"""Running the ``stich`` command as a user would: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_stich(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m stich.cli *args`` in ``cwd``, with no ``STICH_*`` settings but ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stich.cli", *args],
        check=False,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
