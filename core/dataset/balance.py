"""The balance of good and bad replies in KTO data, and the loss weights that even it out.

KTO weighs the loss on good (desirable) and bad (undesirable) replies; its paper, and trl's
trainer, advise weights such that desirable_weight x good / (undesirable_weight x bad) lies in
[1, 4/3]. `balance` grades a count against that and says which weight to set, in the recipe's
own field names. This module knows nothing about files, review state or trainers.
"""

from __future__ import annotations

LOW, HIGH = 1.0, 4 / 3  # the advised range of desirable_weight x good / (undesirable_weight x bad)


def balance(good: int, bad: int, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> dict:
    """{good, bad, ratio, status (good / warn / bad), advice}: `advice` is a sentence, empty
    when the weights already suit the counts."""
    out = {"good": good, "bad": bad, "ratio": None, "status": "good", "advice": ""}
    if not good or not bad:
        missing = "good" if not good else "bad"
        out.update(status="bad", advice=f"KTO needs both good and bad replies; there are no {missing} ones. "
                                        f"Label some replies {missing}, or train these with SFT")
        return out
    ratio = desirable_weight * good / (undesirable_weight * bad)
    out["ratio"] = round(ratio, 3)
    if LOW <= ratio <= HIGH:
        return out
    desirable = (bad * undesirable_weight / good * LOW, bad * undesirable_weight / good * HIGH)
    undesirable = (good * desirable_weight / bad / HIGH, good * desirable_weight / bad / LOW)
    out.update(status="warn", advice=(
        f"{good} good and {bad} bad replies with these weights weigh {ratio:.2f} to 1; KTO learns best between "
        f"1 and 1.33 to 1. Set training.desirable_weight to {desirable[0]:.2f}-{desirable[1]:.2f} "
        f"or training.undesirable_weight to {undesirable[0]:.2f}-{undesirable[1]:.2f} (not both)"))
    return out
