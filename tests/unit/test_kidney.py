"""CKD-EPI 2021 (LIT-CKD-EPI-2021) from serum creatinine: published values and an independent form."""

from __future__ import annotations

import pytest

from hofhir.clinical.kidney import CkdEpi2021, egfr_from_creatinine
from hofhir.knowledge import Knowledge


@pytest.fixture(scope="module")
def eq(kb: Knowledge) -> CkdEpi2021:
    return CkdEpi2021.from_knowledge(kb)


# Published worked values (rounded to one decimal as published):
# - JMLuther/tabletools, calculate_egfr() documentation examples (CKD-EPI 2021; R package,
#   https://rdrr.io/github/JMLuther/tabletools/src/R/calculate_egfr.R):
#   age 70, male, creatinine 0.8 mg/dL -> 95.2; age 50, female, creatinine 1.0 mg/dL -> 68.6.
@pytest.mark.parametrize(
    ("scr", "age", "sex", "published"),
    [(0.8, 70, "male", 95.2), (1.0, 50, "female", 68.6)],
)
def test_published_worked_values(eq: CkdEpi2021, scr: float, age: int, sex: str, published: float) -> None:
    assert round(eq.egfr(scr, age, sex), 1) == published


def _piecewise(scr: float, age: float, sex: str) -> float:
    """The equation in its four-branch tabular form (NKF/Inker 2021 table), written independently of the module."""
    if sex == "female":
        return 142 * 1.012 * (scr / 0.7) ** (-0.241 if scr <= 0.7 else -1.200) * 0.9938**age
    return 142 * (scr / 0.9) ** (-0.302 if scr <= 0.9 else -1.200) * 0.9938**age


@pytest.mark.parametrize("sex", ["female", "male"])
@pytest.mark.parametrize("scr", [0.4, 0.7, 0.9, 1.3, 2.6, 6.0])
@pytest.mark.parametrize("age", [18, 45, 72, 86])
def test_matches_the_tabular_form(eq: CkdEpi2021, scr: float, age: int, sex: str) -> None:
    assert eq.egfr(scr, age, sex) == pytest.approx(_piecewise(scr, age, sex), rel=1e-12)


def test_hand_computed_values_used_in_the_rule_tests(eq: CkdEpi2021) -> None:
    # 142 x (2.6/0.9)^-1.2 x 0.9938^60 = 142 x 0.28006 x 0.68853 = 27.37 (man, 60)
    assert eq.egfr(2.6, 60, "male") == pytest.approx(27.37, abs=0.01)
    # 142 x 1 x 1 x 0.9938^72 x 1.012 = 91.8 (woman, 72, creatinine at kappa)
    assert eq.egfr(0.7, 72, "female") == pytest.approx(91.83, abs=0.01)


def test_umol_per_litre_is_divided_by_88_4(eq: CkdEpi2021) -> None:
    in_umol = egfr_from_creatinine(229.84, "umol/L", 60, "male", eq)
    in_mg = egfr_from_creatinine(2.6, "mg/dL", 60, "male", eq)
    assert in_umol.creatinine_mg_dl == pytest.approx(2.6)
    assert in_umol.value == pytest.approx(in_mg.value)
    assert egfr_from_creatinine(229.84, "µmol/L", 60, "male", eq).value == pytest.approx(in_mg.value)


@pytest.mark.parametrize(
    ("age", "sex", "unit", "why"),
    [
        (60, None, "mg/dL", "administrative sex"),
        (60, "unknown", "mg/dL", "administrative sex"),
        (60, "other", "mg/dL", "administrative sex"),
        (None, "male", "mg/dL", "age"),
        (12, "male", "mg/dL", "from age 18"),
        (60, "male", "mmol/L", "unit"),
    ],
)
def test_no_egfr_without_sex_age_or_a_known_unit_and_it_says_why(
    eq: CkdEpi2021, age: int | None, sex: str | None, unit: str, why: str
) -> None:
    result = egfr_from_creatinine(1.0, unit, age, sex, eq)
    assert result.value is None
    assert why in result.why_not


def test_the_equation_refuses_an_undefined_sex(eq: CkdEpi2021) -> None:
    with pytest.raises(ValueError, match="female or male"):
        eq.egfr(1.0, 50, "unknown")
