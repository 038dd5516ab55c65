"""Resident identity numbers (GB 11643-1999): the check, its messages, derived ids."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.identity import (
    PROVINCES,
    ResidentId,
    citizen_id,
    make_resident_id,
    parse_resident_id,
)
from ledger.errors import InvalidRecord

# The published weights and check characters of ISO 7064 MOD 11-2, restated here so the
# expected values do not come from the code under test.
PUBLISHED_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
PUBLISHED_CHECKS = "10X98765432"
DIGITS = "0123456789"


def expected_check(first17: str) -> str:
    assert len(first17) == 17
    total = sum(int(d) * w for d, w in zip(first17, PUBLISHED_WEIGHTS, strict=True))
    return PUBLISHED_CHECKS[total % 11]


def with_check(first17: str) -> str:
    return first17 + expected_check(first17)


def wrong_check(first17: str) -> str:
    """The first 17 digits followed by a check character that is not the right one."""
    right = expected_check(first17)
    return first17 + next(c for c in "0123456789X" if c != right)


def rejection(text: object) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        parse_resident_id(text)
    assert caught.value.field == "citizen"
    return caught.value


# Accepted numbers


def test_published_example_numbers_are_accepted() -> None:
    # The example printed in GB 11643-1999 itself (its other example, born in 1880, is
    # before the ledger's earliest accepted birth year).
    assert parse_resident_id("11010519491231002X").value == "11010519491231002X"


@pytest.mark.parametrize(
    "first17",
    [
        "11010519900307124",  # Beijing, Chaoyang
        "31010419851130351",  # Shanghai, Xuhui
        "44030520000229001",  # Shenzhen, born on a leap day
        "65010219000101000",  # Urumqi, born on the first day accepted
        "82000019991231999",  # Macao, last sequence number
        "54010220251231002",  # Lhasa
    ],
)
def test_number_with_the_published_check_character_is_accepted(first17: str) -> None:
    number = with_check(first17)
    resident = parse_resident_id(number)
    assert resident == ResidentId(number)
    assert str(resident) == number


def test_accepted_number_exposes_region_province_and_birth_date() -> None:
    resident = parse_resident_id(with_check("44030520000229001"))
    assert resident.region == "440305"
    assert resident.province == "44"
    assert resident.birth_date == date(2000, 2, 29)


def test_lower_case_x_is_normalised_to_upper_case() -> None:
    resident = parse_resident_id("11010519491231002x")
    assert resident.value == "11010519491231002X"
    assert resident == parse_resident_id("11010519491231002X")


@pytest.mark.parametrize("province", sorted(PROVINCES))
def test_every_province_level_code_is_accepted(province: str) -> None:
    number = with_check(f"{province}010119900101001")
    assert parse_resident_id(number).province == province


# Rejections and their messages


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("11010519900307124", "must be 18 characters, not 17"),
        ("1101051990030712477", "must be 18 characters, not 19"),
        ("", "must be 18 characters, not 0"),
        ("110105199003071247\n", "must be 18 characters, not 19"),
    ],
)
def test_wrong_length_is_rejected_naming_the_length(text: str, message: str) -> None:
    assert rejection(text).message == message


@pytest.mark.parametrize(
    "text",
    [
        "1101051990030712A7",  # a letter among the digits
        "X10105199003071247",  # X anywhere but last
        "11010519900307124 ",  # a space instead of the check character
        "110105-99003071247",  # punctuation
        "".join(chr(0xFF10 + int(d)) for d in "110105199003071247"),  # full-width digits
        "".join(chr(0x0660 + int(d)) for d in "110105199003071247"),  # Arabic-Indic digits
    ],
)
def test_non_digits_are_rejected(text: str) -> None:
    assert len(text) == 18
    assert rejection(text).message == "must be 17 digits followed by a digit or X"


def test_a_non_string_is_rejected() -> None:
    assert rejection(110105199003071247).message == "must be a string of 18 characters"
    assert rejection(None).message == "must be a string of 18 characters"


@pytest.mark.parametrize("province", ["00", "10", "16", "20", "39", "49", "60", "72", "99"])
def test_region_without_a_province_code_is_rejected(province: str) -> None:
    number = with_check(f"{province}010519900307124")
    assert rejection(number).message == (
        f"region code {province}0105 does not start with a province code"
    )


@pytest.mark.parametrize(
    "birth",
    [
        "19900230",  # 30 February
        "19890229",  # 29 February in a non-leap year
        "19000229",  # 1900 is not a leap year (divisible by 100, not by 400)
        "21000229",  # nor is 2100
        "19901301",  # month 13
        "19900001",  # month 0
        "19900100",  # day 0
        "19900431",  # 31 April
    ],
)
def test_impossible_birth_date_is_rejected(birth: str) -> None:
    number = with_check(f"110105{birth}124")
    assert rejection(number).message == f"birth date {birth} is not a real date"


def test_29_february_in_a_leap_year_is_accepted() -> None:
    for year in (2000, 1996, 2024):
        number = with_check(f"110105{year}0229124")
        assert parse_resident_id(number).birth_date == date(year, 2, 29)


@pytest.mark.parametrize("birth", ["18991231", "18000101", "10000101"])
def test_birth_date_before_1900_is_rejected(birth: str) -> None:
    number = with_check(f"110105{birth}124")
    assert rejection(number).message == f"birth date {birth} is before 1900"


def test_wrong_check_character_is_rejected_naming_the_right_one() -> None:
    assert rejection("110105194912310021").message == "check character should be X"
    assert rejection("440524198001010015").message == (
        f"check character should be {expected_check('44052419800101001')}"
    )
    first17 = "11010519900307124"
    assert rejection(wrong_check(first17)).message == (
        f"check character should be {expected_check(first17)}"
    )


def test_every_wrong_check_character_is_rejected() -> None:
    first17 = "31010419851130351"
    right = expected_check(first17)
    for wrong in (c for c in "0123456789X" if c != right):
        assert rejection(first17 + wrong).message == f"check character should be {right}"


# Derived ids


def test_citizen_id_is_deterministic() -> None:
    number = with_check("11010519900307124")
    assert citizen_id(number) == citizen_id(number)
    assert parse_resident_id(number).citizen_id == citizen_id(number)
    assert citizen_id(number).version == 5


def test_citizen_id_ignores_the_case_of_x() -> None:
    assert citizen_id("11010519491231002x") == citizen_id("11010519491231002X")


def test_citizen_ids_of_different_numbers_are_distinct() -> None:
    numbers = {
        make_resident_id(region, date(1990, 3, 7), sequence)
        for region in ("110105", "310104", "440305")
        for sequence in range(200)
    }
    ids = {citizen_id(n) for n in numbers}
    assert len(ids) == len(numbers) == 600
    assert all(isinstance(i, uuid.UUID) for i in ids)


def test_make_resident_id_appends_the_published_check_character() -> None:
    assert make_resident_id("110105", date(1949, 12, 31), 2) == "11010519491231002X"
    assert make_resident_id("440524", date(1880, 1, 1), 1) == "440524188001010014"


# Properties

regions = st.builds(
    lambda province, rest: province + rest,
    st.sampled_from(sorted(PROVINCES)),
    st.text(alphabet=DIGITS, min_size=4, max_size=4),
)
births = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
sequences = st.integers(min_value=0, max_value=999)


@given(region=regions, birth=births, sequence=sequences)
def test_made_numbers_are_accepted(region: str, birth: date, sequence: int) -> None:
    number = make_resident_id(region, birth, sequence)
    assert number[:17] == f"{region}{birth:%Y%m%d}{sequence:03d}"
    assert number[17] == expected_check(number[:17])
    resident = parse_resident_id(number)
    assert resident.value == number
    assert resident.region == region
    assert resident.birth_date == birth


@given(region=regions, birth=births, sequence=sequences)
def test_any_single_substitution_is_rejected(region: str, birth: date, sequence: int) -> None:
    number = make_resident_id(region, birth, sequence)
    for position in range(18):
        alphabet = DIGITS if position < 17 else DIGITS + "X"
        for replacement in alphabet:
            if replacement == number[position]:
                continue
            changed = number[:position] + replacement + number[position + 1 :]
            with pytest.raises(InvalidRecord) as caught:
                parse_resident_id(changed)
            assert caught.value.field == "citizen"
            if position == 17:
                assert caught.value.message == f"check character should be {number[17]}"
