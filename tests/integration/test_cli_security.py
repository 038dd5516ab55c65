"""The `ledger` command and hostile or careless input: paths given as policy names,
a database URL carrying a password, a key made where it cannot be.

Given such input, when a command runs, then it ends with a clear error and exit 2,
prints no traceback and no password, and writes nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ledger.transparency.checkpoint import load_verifier
from projections.policy import POLICY_FOLDER
from scripts.cli import main

LEDGER = str(Path(sys.executable).with_name("ledger"))
PASSWORD = "Pw-7f3kq9zX"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own; the URL goes in the environment."""
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    return subprocess.run(
        [LEDGER, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", [("authority", "list"), ("token", "list")])
def test_when_the_database_does_not_answer_then_exit_2_naming_it_without_the_password(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    port = closed_port()
    done = run(*command, url=f"postgresql://auditor:{PASSWORD}@127.0.0.1:{port}/ledger",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Error: db: ")
    assert f"postgresql://auditor:***@127.0.0.1:{port}/ledger" in done.stderr


def test_when_the_password_is_percent_encoded_then_neither_form_is_printed(
    tmp_path: Path,
) -> None:
    port = closed_port()
    done = run("token", "list", url=f"postgresql://auditor:Pw%40{PASSWORD}@127.0.0.1:{port}/x",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "postgresql://auditor:***@127.0.0.1" in done.stderr


# Policies are named, never pathed


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A valid policy file outside the package, named after its file."""
    text = POLICY_FOLDER.joinpath("national-v1.toml").read_text(encoding="utf-8")
    path = tmp_path / "evil.toml"
    path.write_text(text.replace('name = "national-v1"', 'name = "evil"'), encoding="utf-8")
    return path


def invoke(*args: str, url: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LEDGER_DATABASE_URL": url})


@pytest.mark.parametrize(
    "command",
    [
        ("score", "110105199003071247"),
        ("explain", "110105199003071247"),
        ("audit", "110105199003071247"),
        ("list", "enforcement"),
    ],
)
def test_policy_option_when_a_path_then_exit_2_naming_the_available(
    tmp_path: Path, elsewhere: Path, command: tuple[str, ...]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    climb = "/".join([".."] * len(Path(str(POLICY_FOLDER)).parts))
    for name in (str(elsewhere.with_suffix("")), f"{climb}{elsewhere.with_suffix('')}"):
        result = invoke(*command, "--policy", name, url=url)
        assert result.exit_code == 2, result.output
        assert (
            f"no policy {name!r}; available: employment-v1, finance-v1, national-v1"
            in result.output
        )
    assert not (tmp_path / "ledger.db").exists()


def test_policy_promote_when_a_path_then_refused_and_the_default_kept(
    tmp_path: Path, elsewhere: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = invoke("policy", "promote", str(elsewhere.with_suffix("")), url=url)
    assert result.exit_code == 2, result.output
    assert "available: employment-v1, finance-v1, national-v1" in result.output
    listed = invoke("policy", "list", "--json", url=url)
    assert '"name": "evil"' not in listed.output
    assert '"name": "national-v1", "version": 1' in listed.output


def cli_keys_init(*args: str) -> Result:
    return CliRunner().invoke(main, ["keys", "init", *args], env={"LEDGER_SIGNING_KEY": None})


def test_cli_keys_init_when_the_folder_is_missing_then_exit_2_without_a_traceback(
    tmp_path: Path,
) -> None:
    result = cli_keys_init("--key", str(tmp_path / "missing" / "ledger.key"))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"Error: key: {tmp_path / 'missing'} is not a folder" in result.output


@pytest.mark.parametrize("existing", ["ledger.key", "ledger.key.pub"])
def test_cli_keys_init_when_a_key_file_exists_then_exit_2_and_it_is_kept(
    tmp_path: Path, existing: str
) -> None:
    (tmp_path / existing).write_text("kept\n")
    result = cli_keys_init("--key", str(tmp_path / "ledger.key"))
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / existing} exists; a key is never overwritten" in result.output
    assert [p.name for p in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_text() == "kept\n"


def test_cli_keys_init_then_prints_the_public_key_it_wrote(tmp_path: Path) -> None:
    result = cli_keys_init("--key", str(tmp_path / "ledger.key"), "--origin", "example.org/log")
    assert result.exit_code == 0, result.output
    assert result.output == (tmp_path / "ledger.key.pub").read_text()
    assert load_verifier(str(tmp_path / "ledger.key.pub")).name == "example.org/log"
