"""The realistic fault mix of issue 14, in each provider's own words, for tests and benchmarks.

10 % answered 500 (processed and billed, then failed), 5 % answered 429 (half of them with
``Retry-After``), 3 % dropped connections (half before the body was read, half after it was
processed), 2 % bodies that are not JSON (a 200 in plain text, a 502 web page), 2 % answers
slower than the read timeout (processed and billed; the answer comes too late). Each fault
answer carries a marker (CometAPI: its ``request_id``; useapi: a ``marker`` field) so that a
request log tells which fault every request got.

``python -m tests.fakes cometapi --faults SEED`` serves it from the command line.
"""

from __future__ import annotations

import json
from dataclasses import replace

from .cometapi import kling_error
from .server import Action, Delay, Drop, Respond

_HTML = {"Content-Type": "text/html; charset=utf-8"}
BAD_GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
NOT_JSON_TEXT = "upstream said: internal hiccup, try later"
#: The endpoints the mix applies to, per provider (useapi's asset downloads are a CDN's).
ENDPOINTS = {"cometapi": ("recognize",), "useapi": ("upload", "faces")}


def comet_mix(*, slow: float, retry_after: str = "1") -> dict[Action, float]:
    """Fault action -> probability, for CometAPI.

    :param slow: seconds a slow answer takes (make it longer than the client's read timeout).
    :param retry_after: the ``Retry-After`` of the rate limits that carry one.
    """
    slow_success = {
        "code": 0, "message": "SUCCEED", "request_id": "fault-slow",
        "data": {"final_unit_deduction": "0.2", "task_result": {"images": []}},
    }  # fmt: skip
    return {
        replace(kling_error(500, 5000, "Server internal error", request_id="fault-500"), billed=True): 0.10,
        kling_error(429, 1302, "API request is too fast", request_id="fault-429"): 0.025,
        kling_error(429, 1303, "parallel task over resource pack limit", request_id="fault-429-retry-after",
                    headers={"Retry-After": retry_after}): 0.025,
        Drop(after_body=False): 0.015,
        Drop(after_body=True): 0.015,
        Respond(200, NOT_JSON_TEXT, billed=True): 0.01,
        Respond(502, BAD_GATEWAY_PAGE, _HTML): 0.01,
        Delay(slow, Respond(200, slow_success, billed=True)): 0.02,
    }  # fmt: skip


def useapi_mix(*, slow: float, retry_after: str = "1") -> dict[Action, float]:
    """The same mix in useapi's words; see :func:`comet_mix`."""
    return {
        Respond(500, {"error": "Internal server error, please try again later", "marker": "fault-500"}, billed=True): 0.10,
        Respond(429, {"error": "All configured Kling accounts are busy", "marker": "fault-429"}): 0.025,
        Respond(429, {"error": "All configured Kling accounts are busy", "marker": "fault-429-retry-after"},
                {"Retry-After": retry_after}): 0.025,
        Drop(after_body=False): 0.015,
        Drop(after_body=True): 0.015,
        Respond(200, NOT_JSON_TEXT, billed=True): 0.01,
        Respond(502, BAD_GATEWAY_PAGE, _HTML): 0.01,
        Delay(slow, Respond(200, {"status": 0, "url": "https://example.invalid/slow.jpg", "faceItems": [],
                                  "marker": "fault-slow"}, billed=True)): 0.02,
    }  # fmt: skip


def fault_mix(provider: str, *, slow: float, retry_after: str = "1") -> dict[Action, float]:
    """:func:`comet_mix` or :func:`useapi_mix` by provider id."""
    return {"cometapi": comet_mix, "useapi": useapi_mix}[provider](slow=slow, retry_after=retry_after)


def fault_kind(record) -> str:
    """Which fault of the mix a recorded request got: "success", or "unexplained" for an
    error answer that is not one of the mix's."""
    if record.status is None:
        return "drop_after_body" if record.billed else "drop_before_body"
    body = record.response_body or b""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "not_json_502_html" if record.status == 502 else "not_json_200_text"
    marker = parsed.get("request_id") if isinstance(parsed, dict) else None
    marker = parsed.get("marker", marker) if isinstance(parsed, dict) else None
    if marker == "fault-500":
        return "http_500"
    if marker == "fault-429":
        return "http_429"
    if marker == "fault-429-retry-after":
        return "http_429_retry_after"
    if marker == "fault-slow":
        return "slower_than_timeout"
    return "success" if record.status == 200 else "unexplained"
