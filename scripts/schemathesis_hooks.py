"""Schemathesis hooks for scripts/api-conformance: the API's rules that span fields or depend
on state, which a JSON Schema cannot state. Generated cases that break one are dropped rather
than sent, so `positive_data_acceptance` holds the server to everything else the document says.
Each rule here is enforced by the server with a 400/422 naming the field (and tested in
analytics-http/tests); this file only keeps the generator from proposing such requests as valid.
"""

import datetime as dt
import json

import schemathesis

UTC = dt.timezone.utc
# The earliest and latest instants a range may touch, with a day's margin for any timezone.
EARLIEST = dt.datetime(1970, 1, 2, tzinfo=UTC)
LATEST = dt.datetime(9999, 12, 30, tzinfo=UTC)
# The series is at most 10,000 buckets; a bucket's length by `groupBy`, in hours (a month at
# its shortest, a margin of two buckets for partial ones at the ends).
MAX_BUCKETS = 10_000 - 2
UNIT_HOURS = {"hour": 1, "day": 24, "week": 168, "month": 28 * 24}
# How far ahead of the server's clock an event may be.
FUTURE_SKEW = dt.timedelta(minutes=5)
MAX_PROPERTIES_BYTES = 8 * 1024
# The tenant the run acts for (scripts/api-conformance).
TENANT = "acme"


def _instant(raw, is_end):
    """A range bound as the server reads it (a date is its day's start; an end date is
    inclusive), or None when it is not one (the server refuses it; not this file's concern)."""
    if not isinstance(raw, str):
        return None
    try:
        if len(raw) == 10:
            day = dt.datetime.fromisoformat(raw).replace(tzinfo=UTC)
            return day + dt.timedelta(days=1) if is_end else day
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _range_is_valid(start, end, group_by):
    """Whether a range's bounds are in order, within the years the server takes, and small
    enough for the series at `group_by`."""
    start, end = _instant(start, False), _instant(end, True)
    if start is None or end is None:
        return True
    if not (EARLIEST <= start < end <= LATEST):
        return False
    hours = (end - start) / dt.timedelta(hours=1)
    unit = UNIT_HOURS.get(group_by, 24) if isinstance(group_by, str) else 24
    return hours / unit <= MAX_BUCKETS


def _query_is_valid(path, query):
    start = query.get("startDate", query.get("from"))
    end = query.get("endDate", query.get("to"))
    if start is not None and end is not None and not _range_is_valid(start, end, query.get("groupBy")):
        return False
    if path.endswith("/events") and start is not None and end is None:
        return _instant(start, False) is None or _instant(start, False) >= EARLIEST
    # A cursor is a value the server handed out (a bucket's or an event's position); paging by
    # page and by cursor at once is refused.
    if query.get("cursor") not in (None, ""):
        return False
    return not ("page" in query and "cursor" in query)


def _event_is_valid(event, now):
    if not isinstance(event, dict):
        return True
    if event.get("tenantId") not in (None, TENANT):
        return False
    stamp = event.get("timestamp")
    if isinstance(stamp, str):
        instant = _instant(stamp, False) if len(stamp) > 10 else None
        if instant is not None and not (EARLIEST <= instant <= now + FUTURE_SKEW):
            return False
    extra = {}
    for field in ("metadata", "properties"):
        if isinstance(event.get(field), dict):
            extra.update(event[field])
    # Campaign clients put the experiment and variant among the properties: they are read from
    # there, and must then be valid ids.
    if "experimentId" in extra or "variant" in extra:
        return False
    if len(json.dumps(extra, separators=(",", ":"))) > MAX_PROPERTIES_BYTES:
        return False
    return event.get("variant") is None or event.get("experimentId") is not None


def _experiment_is_valid(body, patch):
    if not isinstance(body, dict):
        return True
    name = body.get("name")
    if isinstance(name, str) and not name.strip():
        return False
    variants = body.get("variants")
    if isinstance(variants, list):
        keys = [v.get("key") for v in variants if isinstance(v, dict)]
        if len(keys) != len(set(map(str, keys))):
            return False
    if patch:
        # An update is checked against the stored experiment's dates, which the generator
        # cannot see.
        return body.get("startsAt") is None and body.get("endsAt") is None
    start, end = _instant(body.get("startsAt"), False), _instant(body.get("endsAt"), False)
    return start is None or end is None or start < end


@schemathesis.hook
def filter_case(ctx, case):
    path, method = case.operation.path, case.operation.method.upper()
    query = case.query or {}
    declared = {parameter.name for parameter in case.operation.query}
    # Parameters the document does not declare (the stateful phase carries response fields
    # over) are refused by name, by design.
    if set(query) - declared:
        return False
    if query and not _query_is_valid(path, query):
        return False
    body = case.body
    now = dt.datetime.now(UTC)
    if path == "/api/events" and method == "POST":
        return _event_is_valid(body, now)
    if path == "/api/events/batch" and isinstance(body, dict) and isinstance(body.get("events"), list):
        return all(_event_is_valid(e, now) for e in body["events"])
    if path == "/api/experiments" and method == "POST":
        return _experiment_is_valid(body, patch=False)
    if path == "/api/experiments/{id}" and method == "PATCH":
        return _experiment_is_valid(body, patch=True)
    if path == "/api/analytics/cache/warm" and isinstance(body, dict):
        ranges = body.get("ranges")
        if isinstance(ranges, list):
            return all(
                not isinstance(r, dict) or _query_is_valid(path, {k: v for k, v in r.items() if v is not None})
                for r in ranges
            )
    return True


@schemathesis.hook
def filter_query(ctx, query):
    # Every phase (the stateful one fills parameters from responses after `filter_case`): a
    # cursor is only ever one the server handed out, and paging by page and cursor at once is
    # refused.
    if not isinstance(query, dict):
        return True
    return query.get("cursor") in (None, "") and not ("page" in query and "cursor" in query)
