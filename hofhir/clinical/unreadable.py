"""The data-unreadable card (ho-rules-v1 §1, 1.1): a record the rules need that could not be read is never silent.

Tolerant reading (hofhir.fhir.read) already dropped the elements the R4B model refused; what is left in
`ClinicalInput.rejected` with `needed` set could not be read at all. One `info` card says how many records
of which type and why, so the clinician knows the guidance may be incomplete.
"""

from __future__ import annotations

from collections import Counter

from hofhir.clinical.model import Finding, Indicator, Topic
from hofhir.fhir.read import ClinicalInput
from hofhir.knowledge import Knowledge

MAX_REASONS = 3  # distinct reasons listed per resource type


def unreadable_finding(inputs: ClinicalInput, k: Knowledge) -> Finding | None:
    needed = [r for r in inputs.rejected if r.needed]
    if not needed:
        return None
    texts = k.cards["data_unreadable"]
    counts = Counter(r.resource_type for r in needed)
    total = sum(counts.values())
    if len(counts) == 1:
        ((rtype, count),) = counts.items()
        summary = str(texts["summary_one" if count == 1 else "summary_one_type"]).format(
            count=count, type=rtype, types=f"{count} {rtype}"
        )
    else:
        types = ", ".join(f"{n} {t}" for t, n in counts.most_common())
        summary = str(texts["summary_many"]).format(count=total, type="", types=types)
    reasons = []
    for rtype, count in counts.most_common():
        why = list(dict.fromkeys(r.reason for r in needed if r.resource_type == rtype))
        listed = "; ".join(why[:MAX_REASONS]) + (" …" if len(why) > MAX_REASONS else "")
        reasons.append(str(texts["reason"]).format(count=count, type=rtype, reasons=listed))
    cautions = texts["advice"]
    return Finding(
        topic=Topic.DATA_UNREADABLE,
        indicator=Indicator.INFO,
        rules=(),
        summary=summary,
        reasons=tuple(reasons),
        cautions=tuple(cautions) if isinstance(cautions, list) else (str(cautions),),
        extra={"unreadable": dict(counts)},
    )
