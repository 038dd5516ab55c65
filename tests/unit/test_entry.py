"""The `ledger` entry point stays light: processes the command spawns import it again."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_entry_point_imports_no_command_and_no_library() -> None:
    probe = (
        "import sys, scripts.entry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('click', 'rich', 'flask', 'psycopg', 'eventsourcing', 'ledger', 'projections') "
        "or m.startswith('scripts.cli')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
