"""The reports: the store's raw aggregates (counts, sums, sums of squares) turned into cells with `stats`, each
with its n and 95% interval, "too few" below the minimum n, and the difference tests a split asks for."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from copilot.analytics import stats
from copilot.analytics.store import RATE_METRICS, SCORECARD_ITEMS
from copilot.errors import InvalidPayload

FILTERS = ("day_from", "day_to", "queue")
# the group a split's other groups are compared with (the first that is present; variants: "control", else the
# first in order)
REFERENCE = {"acknowledged": "not_acknowledged", "suggestion": "not_used", "variant": "control"}
CQS_FORMULA = ("CQS = mean over the survey items answered (felt understood, acknowledged my situation, clear next "
               "steps) of (x - 1) / (scale - 1) x 100")


def _filters(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in FILTERS if params.get(k) is not None}


def _moments(row: Mapping[str, Any], prefix: str = "") -> tuple[int, float, float]:
    return int(row[f"{prefix}n"] or 0), float(row[f"{prefix}total"] or 0.0), float(row[f"{prefix}total_sq"] or 0.0)


def _cell(moments: tuple[int, float, float], rate: bool, min_n: int) -> dict[str, Any]:
    """A mean cell, or a rate cell for a 0/1 metric (its sum is the successes)."""
    n, total, _ = moments
    return stats.rate_cell(round(total), n, min_n) if rate else stats.mean_cell(moments, min_n)


def _difference(a: tuple[int, float, float], b: tuple[int, float, float], rate: bool, min_n: int) -> dict[str, Any]:
    if rate:
        return stats.two_proportions(round(a[1]), a[0], round(b[1]), b[0], min_n=min_n)
    return stats.welch(a, b, min_n=min_n)


def resolution(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """Emotional Resolution Rate (negative episodes acknowledged / negative episodes) by day, queue, agent or
    cue."""
    by = params.get("by") or "day"
    rows = []
    for row in store.resolution(tenant, by=by, **_filters(params)):
        negative, resolved = int(row["negative_episodes"] or 0), int(row["resolved"] or 0)
        cell = stats.rate_cell(resolved, negative, min_n)
        rows.append({by: row["grp"], "conversations": int(row["conversations"]), "negative_episodes": negative,
                     "resolved": resolved, "rate": cell["rate"], "ci95": cell["ci95"]})
    return {"by": by, "min_n": min_n, "rows": rows}


def outcomes(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """An outcome metric (CSAT, NPS, a survey item on 0-100, CQS, resolved, repeat contact) per group of a
    split, each group against the split's reference group by Welch's t (two proportions for a rate)."""
    metric, split = params.get("metric") or "csat", params.get("split") or "acknowledged"
    rate = metric in RATE_METRICS
    found = store.outcome_moments(tenant, metric=metric, split=split, experiment=params.get("experiment"),
                                  cue=params.get("cue"), **_filters(params))
    groups = {str(row["grp"]): _moments(row) for row in found}
    reference = REFERENCE.get(split)
    if split == "variant" and reference not in groups:
        reference = next(iter(groups), None)
    rows = []
    for group, moments in groups.items():
        row: dict[str, Any] = {"group": group, **_cell(moments, rate, min_n)}
        if reference in groups and group != reference:
            row["versus"] = {"group": reference, **_difference(moments, groups[reference], rate, min_n)}
        rows.append(row)
    return {"metric": metric, "split": split, "reference": reference if reference in groups else None,
            "min_n": min_n, "rows": rows}


def cqs(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """The Connection Quality Score's mean and 95% interval per queue, day or agent (or all)."""
    by = params.get("by") or "queue"
    rows = [{by: row["grp"], **stats.mean_cell(_moments(row), min_n)}
            for row in store.cqs_moments(tenant, by=by, **_filters(params))]
    return {"by": by, "formula": CQS_FORMULA, "min_n": min_n, "rows": rows}


def phrasings(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """Per phrasing: acceptance (used / shown), the helpful share of its ratings, and the outcome metric where it
    was used against where it was shown and not used (the lift)."""
    metric = params.get("metric") or "csat"
    rate = metric in RATE_METRICS
    rows = []
    for row in store.phrasings(tenant, metric=metric, **_filters(params)):
        shown, used = int(row["shown"] or 0), int(row["used"] or 0)
        helpful, unhelpful = int(row["helpful"] or 0), int(row["not_helpful"] or 0)
        with_it, without = _moments(row, "used_"), _moments(row, "unused_")
        rows.append({"phrasing_id": row["phrasing_id"], "shown": shown, "used": used,
                     "dismissed": int(row["dismissed"] or 0), "acceptance": stats.rate_cell(used, shown, min_n),
                     "helpful": stats.rate_cell(helpful, helpful + unhelpful, min_n),
                     "outcome_used": _cell(with_it, rate, min_n), "outcome_not_used": _cell(without, rate, min_n),
                     "lift": _difference(with_it, without, rate, min_n)})
    return {"metric": metric, "min_n": min_n, "rows": rows}


def repeat_contacts(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """Repeat contacts per group: observed (the same customer_ref back within `within_days`, default 7) and as
    the outcomes reported them."""
    by, within = params.get("by") or "day", int(params.get("within_days") or 7)
    rows = []
    for row in store.repeat_contacts(tenant, by=by, within_days=within, **_filters(params)):
        rows.append({by: row["grp"], "conversations": int(row["conversations"]),
                     "observed": stats.rate_cell(int(row["observed_repeats"] or 0),
                                                 int(row["with_customer_ref"] or 0), min_n),
                     "reported": stats.rate_cell(int(row["reported_repeats"] or 0), int(row["reported"] or 0),
                                                 min_n)})
    return {"by": by, "within_days": within, "min_n": min_n, "rows": rows}


def scorecards(store: Any, tenant: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """The empathy scorecard per agent, queue or day: the mean score and, per rubric item, the share met where
    it applied."""
    by = params.get("by") or "agent"
    rows = []
    for row in store.scorecards(tenant, by=by, **_filters(params)):
        items = {i: stats.rate_cell(int(row[f"{i}_met"] or 0), int(row[f"{i}_applicable"] or 0), min_n)
                 for i in SCORECARD_ITEMS}
        rows.append({by: row["grp"], "conversations": int(row["conversations"]),
                     "score": stats.mean_cell(_moments(row), min_n), **items})
    return {"min_n": min_n, "rows": rows}


REPORTS = {"resolution": resolution, "outcomes": outcomes, "cqs": cqs, "phrasings": phrasings,
           "repeat_contacts": repeat_contacts}


def report(store: Any, tenant: str, name: str, params: Mapping[str, Any], min_n: int) -> dict[str, Any]:
    """The named report for the tenant: {"rows": [...], and what it was asked with}. A grouping, split or metric
    the store does not have raises InvalidPayload."""
    if name not in REPORTS:
        raise InvalidPayload(f"no report '{name}'; the reports are {', '.join(REPORTS)}")
    return REPORTS[name](store, tenant, params, min_n)
