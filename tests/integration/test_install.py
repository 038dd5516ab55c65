"""The wheel: what a real (non-editable) install gets.

Given the project's source, when a wheel is built (offline, as `pip wheel` does),
then it carries every file the packages read at run time besides their code, and
the policies load from the unpacked wheel alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "scripts")
NOT_DATA = shutil.ignore_patterns("__pycache__", "*.pyc")


def data_files() -> list[str]:
    """Every file under the packages that is not code: what the wheel must add to it."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source, so no build folder of the tree leaks in."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=NOT_DATA)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-index",
         "--no-build-isolation", "--quiet", "-w", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


def test_the_packages_read_the_shipped_policies_as_data() -> None:
    assert {"projections/policies/national-v1.toml", "projections/policies/finance-v1.toml"} <= set(
        data_files()
    )


def test_wheel_carries_every_data_file_of_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [name for name in data_files() if name not in names]
        assert missing == []
        for name in data_files():
            assert archive.read(name) == (ROOT / name).read_bytes()


def test_policies_and_decision_rules_load_from_the_unpacked_wheel_alone(
    wheel: Path, tmp_path: Path
) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from projections import policy;"
        "print(policy.__file__); print(*policy.available());"
        "print(*(policy.load(n).version for n in policy.available()));"
        "from projections import decisions;"
        "print(*(decisions.load(n).purpose.name for n in decisions.available()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(unpacked)],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, names, versions, purposes = done.stdout.splitlines()
    assert Path(where).is_relative_to(unpacked)
    assert names == "employment-v1 finance-v1 national-v1"
    assert versions == "1 1 1"
    assert purposes == "consumer_loan licensed_employment mortgage"
