"""Kidney function for the NSAID safety screen (ho-rules 1.1 §5a): CKD-EPI 2021 from serum creatinine.

LIT-CKD-EPI-2021 (Inker et al., N Engl J Med 2021;385:1737-49), race-free:
eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female],
k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M), Scr in mg/dL (umol/L / 88.4).
The coefficients are knowledge (parameters.toml [ckd_epi_2021]); this module only does the arithmetic.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hofhir.knowledge import Knowledge


@dataclass(frozen=True)
class CkdEpi2021:
    coefficient: float
    kappa_female: float
    kappa_male: float
    alpha_female: float
    alpha_male: float
    exponent_above_kappa: float
    age_base: float
    female_factor: float
    umol_per_mg_dl: float
    units_mg_dl: frozenset[str]
    units_umol_l: frozenset[str]
    adult_from_years: int

    @classmethod
    def from_knowledge(cls, k: Knowledge) -> CkdEpi2021:
        p: dict[str, Any] = k.parameters["ckd_epi_2021"]
        return cls(
            coefficient=float(p["coefficient"]),
            kappa_female=float(p["kappa_female"]),
            kappa_male=float(p["kappa_male"]),
            alpha_female=float(p["alpha_female"]),
            alpha_male=float(p["alpha_male"]),
            exponent_above_kappa=float(p["exponent_above_kappa"]),
            age_base=float(p["age_base"]),
            female_factor=float(p["female_factor"]),
            umol_per_mg_dl=float(p["umol_per_mg_dl"]),
            units_mg_dl=frozenset(str(u) for u in p["units_mg_dl"]),
            units_umol_l=frozenset(str(u) for u in p["units_umol_l"]),
            adult_from_years=int(p["adult_from_years"]),
        )

    def creatinine_mg_dl(self, value: float, unit: str) -> float | None:
        """Serum creatinine in mg/dL, or None when the unit is not one the knowledge base knows."""
        if unit in self.units_mg_dl:
            return value
        if unit in self.units_umol_l:
            return value / self.umol_per_mg_dl
        return None

    def egfr(self, scr_mg_dl: float, age_years: float, sex: str) -> float:
        """eGFR in mL/min/1.73 m2 for sex 'female' or 'male' (FHIR administrative gender codes)."""
        if sex not in ("female", "male"):
            raise ValueError(f"CKD-EPI 2021 is defined for female or male, not {sex!r}")
        if scr_mg_dl <= 0:
            raise ValueError("serum creatinine must be positive")
        female = sex == "female"
        kappa = self.kappa_female if female else self.kappa_male
        alpha = self.alpha_female if female else self.alpha_male
        ratio = scr_mg_dl / kappa
        value: float = (
            self.coefficient
            * min(ratio, 1.0) ** alpha
            * max(ratio, 1.0) ** self.exponent_above_kappa
            * self.age_base**age_years
        )
        return value * self.female_factor if female else value


@dataclass(frozen=True)
class ComputedEgfr:
    """The outcome of computing an eGFR: a value, or the reason there is none (said on the card)."""

    value: float | None
    creatinine_mg_dl: float | None
    why_not: str = ""


def egfr_from_creatinine(
    value: float | None, unit: str, age_years: int | None, sex: str | None, equation: CkdEpi2021
) -> ComputedEgfr:
    """CKD-EPI 2021 from a creatinine result; no eGFR (and why) when a value, unit, age or sex is missing."""
    if value is None or value <= 0:
        return ComputedEgfr(None, None, "the creatinine result has no usable value")
    scr = equation.creatinine_mg_dl(value, unit)
    if scr is None:
        return ComputedEgfr(None, None, f"the creatinine unit {unit or '(none)'} is not one hofhir converts")
    if sex not in ("female", "male"):
        return ComputedEgfr(None, scr, "administrative sex is not recorded as female or male")
    if age_years is None:
        return ComputedEgfr(None, scr, "the age (birth date) is not recorded")
    if age_years < equation.adult_from_years:
        return ComputedEgfr(None, scr, f"CKD-EPI 2021 applies from age {equation.adult_from_years}")
    return ComputedEgfr(equation.egfr(scr, age_years, sex), scr)
