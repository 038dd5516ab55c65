"""Policy files: the shipped ones say what issue 3 says, and a bad one is refused.

Given a policy file (shipped, or written to a temporary folder, or a decoded table),
when it is loaded, then it is the policy the spec describes, or a PolicyError naming
the file and the key at fault.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from projections import policy as policies
from projections.policy import (
    POLICY_FOLDER,
    Band,
    InfractionRule,
    PaymentRule,
    PolicyError,
    UnknownPolicy,
    VerificationRule,
    available,
    load,
    load_file,
    parse,
    register,
)

NATIONAL_TEXT = POLICY_FOLDER.joinpath("national-v1.toml").read_text(encoding="utf-8")


def national_as(name: str) -> dict[str, Any]:
    """The national-v1 table, renamed so that it matches a file called `name`.toml."""
    data = tomllib.loads(NATIONAL_TEXT)
    data["name"] = name
    return data


def refused(data: dict[str, Any], source: str = "x.toml") -> str:
    with pytest.raises(PolicyError) as caught:
        parse(data, source)
    return str(caught.value)


# The shipped files


def test_available_then_both_shipped_policies() -> None:
    assert {"national-v1", "finance-v1"} <= set(available())


def test_load_national_v1_then_exactly_the_spec_table() -> None:
    policy = load("national-v1")
    assert (policy.name, policy.version) == ("national-v1", 1)
    assert (policy.base, policy.floor, policy.ceiling) == (1000, 0, None)
    assert policy.positive_cap == 100
    assert policy.dispute_grace_days == 30
    assert policy.enforcement_kinds == ("judgment_default",)
    assert policy.bands == (
        Band("AAA", 1050),
        Band("AA", 1030),
        Band("A", 960),
        Band("B", 850),
        Band("C", 600),
        Band("D", 0),
    )
    assert policy.infractions == {
        "traffic_fine": InfractionRule(open=-5, expires_after_years=3),
        "tax_arrears": InfractionRule(-30, 7, residual=-10, residual_years=1),
        "court_judgment": InfractionRule(-20, 7, residual=-5, residual_years=1),
        "judgment_default": InfractionRule(-100, 7, residual=-30, residual_years=1),
        "loan_default": InfractionRule(-50, 7, residual=-25, residual_years=2),
        "criminal_conviction": InfractionRule(open=-150, expires_after_years=10),
    }
    assert policy.payments == {
        "tax_paid_on_time": PaymentRule(points=5, years=3),
        "loan_repaid_on_time": PaymentRule(points=1, years=2, cap=30),
    }
    assert policy.verifications == {
        "degree": VerificationRule(points=10, revoked=-40, revoked_years=7),
        "professional_license": VerificationRule(points=5, revoked=-20, revoked_years=7),
    }


def test_load_finance_v1_then_only_financial_records_with_its_own_bands() -> None:
    policy = load("finance-v1")
    assert (policy.name, policy.version) == ("finance-v1", 1)
    assert (policy.base, policy.floor, policy.ceiling) == (700, 300, 850)
    assert set(policy.infractions) == {
        "tax_arrears",
        "loan_default",
        "court_judgment",
        "judgment_default",
    }
    assert set(policy.payments) == {"tax_paid_on_time", "loan_repaid_on_time"}
    assert policy.verifications == {}
    assert [b.band for b in policy.bands] == ["excellent", "good", "fair", "poor", "very poor"]


NATIONAL_BAND_EDGES = [
    (1200, "AAA"),
    (1050, "AAA"),
    (1049, "AA"),
    (1030, "AA"),
    (1029, "A"),
    (960, "A"),
    (959, "B"),
    (850, "B"),
    (849, "C"),
    (600, "C"),
    (599, "D"),
    (0, "D"),
]


@pytest.mark.parametrize(("points", "band"), NATIONAL_BAND_EDGES)
def test_band_of_when_national_then_the_spec_thresholds(points: int, band: str) -> None:
    assert load("national-v1").band_of(points) == band


def test_load_when_no_such_policy_then_unknown_policy_naming_it_and_the_available() -> None:
    with pytest.raises(UnknownPolicy) as caught:
        load("national-v9")
    assert (
        str(caught.value)
        == "no policy 'national-v9'; available: employment-v1, finance-v1, national-v1"
    )


# Names, never paths


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A valid policy file called x.toml, outside the package."""
    path = tmp_path / "x.toml"
    path.write_text(NATIONAL_TEXT.replace('name = "national-v1"', 'name = "x"'), "utf-8")
    return path


def test_load_when_a_path_to_a_valid_policy_elsewhere_then_refused(elsewhere: Path) -> None:
    for name in (str(elsewhere.with_suffix("")), str(elsewhere)):
        with pytest.raises(
            UnknownPolicy, match=r"; available: employment-v1, finance-v1, national-v1$"
        ):
            load(name)


def test_load_when_a_relative_path_out_of_the_folder_then_refused(elsewhere: Path) -> None:
    climb = "/".join([".."] * len(Path(str(POLICY_FOLDER)).parts))
    for name in (f"{climb}{elsewhere.with_suffix('')}", "../policies/national-v1"):
        with pytest.raises(UnknownPolicy):
            load(name)


@pytest.mark.parametrize("name", ["", ".", "national-v1.toml", "NATIONAL-V1", " national-v1"])
def test_load_when_not_exactly_a_shipped_name_then_refused(name: str) -> None:
    with pytest.raises(UnknownPolicy):
        load(name)


def test_register_then_the_policy_is_nameable(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policies, "_registered", {})
    assert "x" not in available()
    policy = load_file(elsewhere)
    register(policy)
    assert load("x") is policy
    assert available() == ["employment-v1", "finance-v1", "national-v1", "x"]


def test_register_when_a_shipped_name_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "_registered", {})
    with pytest.raises(PolicyError, match="'finance-v1' is a shipped policy"):
        register(load("finance-v1"))


def test_register_when_another_policy_holds_the_name_then_refused(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policies, "_registered", {})
    register(load_file(elsewhere))
    register(load_file(elsewhere))
    elsewhere.write_text(elsewhere.read_text().replace("base = 1000", "base = 900"), "utf-8")
    with pytest.raises(PolicyError, match="another policy is registered as 'x'"):
        register(load_file(elsewhere))
    assert load("x").base == 1000


# Files an operator chose


def test_load_file_when_valid_then_loaded(elsewhere: Path) -> None:
    policy = load_file(elsewhere)
    assert policy.name == "x"
    assert policy.infractions["loan_default"] == InfractionRule(-50, 7, -25, 2)


def test_load_file_when_missing_then_policy_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^cannot read .*y\.toml: No such file"):
        load_file(tmp_path / "y.toml")


def test_load_when_name_does_not_match_the_file_then_policy_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(NATIONAL_TEXT, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_file(tmp_path / "x.toml")
    message = str(caught.value)
    assert message.startswith("x.toml: name ")
    assert "'national-v1'" in message


def test_load_when_not_toml_then_policy_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('name = "x"\nbase = \n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"^x\.toml: not valid TOML"):
        load_file(tmp_path / "x.toml")


def test_load_when_an_unknown_kind_in_a_file_then_policy_error_naming_it(tmp_path: Path) -> None:
    text = NATIONAL_TEXT.replace('name = "national-v1"', 'name = "x"')
    text += "\n[infractions.speeding]\nopen = -5\nexpires_after_years = 3\n"
    (tmp_path / "x.toml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"^x\.toml: infractions\.speeding: "):
        load_file(tmp_path / "x.toml")


def test_load_when_a_non_integer_in_a_file_then_policy_error_naming_it(tmp_path: Path) -> None:
    text = NATIONAL_TEXT.replace('name = "national-v1"', 'name = "x"')
    (tmp_path / "x.toml").write_text(text.replace("open = -30", "open = -30.5"), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"^x\.toml: infractions\.tax_arrears\.open: "):
        load_file(tmp_path / "x.toml")


# Decoded tables: each fault names its key


def test_parse_when_valid_then_a_policy() -> None:
    assert parse(national_as("x"), "x.toml").base == 1000


def test_parse_when_name_does_not_match_the_source_then_policy_error_naming_name() -> None:
    message = refused(national_as("national-v1"), "x.toml")
    assert message.startswith("x.toml: name ")


@pytest.mark.parametrize(
    ("table", "kind"),
    [
        ("infractions", "speeding"),
        ("payments", "rent_paid_on_time"),
        ("verifications", "driving_licence"),
    ],
)
def test_parse_when_an_unknown_kind_then_policy_error_naming_it(table: str, kind: str) -> None:
    data = national_as("x")
    data[table][kind] = {"open": -5, "expires_after_years": 3}
    assert refused(data).startswith(f"x.toml: {table}.{kind}: ")


def test_parse_when_an_unknown_enforcement_kind_then_policy_error_naming_it() -> None:
    data = national_as("x")
    data["enforcement_kinds"] = ["speeding"]
    assert refused(data).startswith("x.toml: enforcement_kinds: ")


def test_parse_when_an_unknown_setting_of_a_kind_then_policy_error_naming_it() -> None:
    data = national_as("x")
    data["infractions"]["tax_arrears"]["residul"] = -10
    assert refused(data).startswith("x.toml: infractions.tax_arrears.residul: ")


@pytest.mark.parametrize(
    "key",
    ["name", "version", "title", "base", "floor", "positive_cap", "dispute_grace_days", "bands"],
)
def test_parse_when_a_required_key_is_missing_then_policy_error_naming_it(key: str) -> None:
    data = national_as("x")
    del data[key]
    assert refused(data).startswith(f"x.toml: {key}: ")


@pytest.mark.parametrize(
    ("table", "kind", "setting"),
    [
        ("infractions", "tax_arrears", "open"),
        ("infractions", "criminal_conviction", "expires_after_years"),
        ("payments", "tax_paid_on_time", "points"),
        ("payments", "loan_repaid_on_time", "years"),
        ("verifications", "degree", "revoked"),
        ("verifications", "professional_license", "revoked_years"),
    ],
)
def test_parse_when_a_required_setting_is_missing_then_policy_error_naming_it(
    table: str, kind: str, setting: str
) -> None:
    data = national_as("x")
    del data[table][kind][setting]
    assert refused(data).startswith(f"x.toml: {table}.{kind}.{setting}: ")


def test_parse_when_a_band_has_no_min_then_policy_error_naming_it() -> None:
    data = national_as("x")
    del data["bands"][2]["min"]
    assert refused(data).startswith("x.toml: bands[2].min: ")


@pytest.mark.parametrize("value", ["1000", 1000.5, True, None])
def test_parse_when_base_is_not_a_whole_number_then_policy_error_naming_it(value: Any) -> None:
    data = national_as("x")
    data["base"] = value
    assert refused(data).startswith("x.toml: base: ")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("infractions", "traffic_fine", "open"), "-5"),
        (("infractions", "loan_default", "residual_years"), 2.0),
        (("payments", "loan_repaid_on_time", "cap"), "30"),
        (("verifications", "degree", "points"), False),
    ],
)
def test_parse_when_a_setting_is_not_a_whole_number_then_policy_error_naming_it(
    path: tuple[str, str, str], value: Any
) -> None:
    data = national_as("x")
    table, kind, setting = path
    data[table][kind][setting] = value
    assert refused(data).startswith(f"x.toml: {table}.{kind}.{setting}: ")


def test_parse_when_a_band_min_is_not_a_whole_number_then_policy_error_naming_it() -> None:
    data = national_as("x")
    data["bands"][1]["min"] = "1030"
    assert refused(data).startswith("x.toml: bands[1].min: ")


def test_parse_when_version_is_zero_then_policy_error_naming_it() -> None:
    data = national_as("x")
    data["version"] = 0
    assert refused(data).startswith("x.toml: version: ")


def test_parse_when_bands_are_not_sorted_from_the_top_then_policy_error_naming_bands() -> None:
    data = national_as("x")
    data["bands"][1], data["bands"][2] = data["bands"][2], data["bands"][1]
    assert refused(data).startswith("x.toml: bands: ")


def test_parse_when_bands_are_sorted_from_the_bottom_then_policy_error_naming_bands() -> None:
    data = national_as("x")
    data["bands"].reverse()
    assert refused(data).startswith("x.toml: bands: ")


def test_parse_when_bands_are_empty_then_policy_error_naming_bands() -> None:
    data = national_as("x")
    data["bands"] = []
    assert refused(data).startswith("x.toml: bands: ")


def test_parse_when_a_top_level_key_is_misspelt_then_rejected_naming_it() -> None:
    data = tomllib.loads(
        POLICY_FOLDER.joinpath("finance-v1.toml").read_text().replace("ceiling =", "celing =")
    )
    with pytest.raises(PolicyError, match="celing: is not a policy setting"):
        parse(data, "finance-v1.toml")
