"""A fake of CometAPI's Kling image recognition, per ../../../shared/providers.md section A.

``POST /kling/v1/videos/image-recognize`` with ``Authorization: Bearer <key>`` and a JSON body
``{"image": "<raw base64, or an http(s) URL>"}``.

Which error shape answers what, when the fake itself refuses a request:

- no key, or a wrong one: 401, the gateway's shape (``code`` "" without a key,
  "invalid_request" with a wrong one);
- ``balance_exhausted``: 403, gateway shape, ``insufficient_user_quota``;
- ``arrears``: 429, Kling's shape, code 1101;
- over ``max_concurrency``: 429, Kling's shape, code 1303;
- a body that is not JSON: 500, gateway shape, ``invalid_request``;
- no ``image``, or not a string: 400, Kling 1200; a bad image: 400, Kling 1201;
- any other URL: 404 with an HTML page, as a wrong base URL gets.

Every row of the vendor's error table is in :data:`COMET_ERRORS`, ready to enqueue; the
task-relay shape and the 200 whose code is not 0 are there too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import threading
import uuid
from fractions import Fraction
from typing import Any, Mapping

from .server import BadImage, FakeServer, Incoming, Respond, bearer_token, inspect_image

RECOGNIZE_PATH = "/kling/v1/videos/image-recognize"
FLAG_TYPES = ("head_seg", "face_seg", "cloth_seg", "object_seg")
#: Sent when ``extra_types`` is on: a type no document mentions, which clients must keep.
EXTRA_TYPE = "hand_seg"
COST = "0.2"

_HTML = {"Content-Type": "text/html; charset=utf-8"}


def _html_page(status_line: str, server: str = "nginx") -> str:
    return (
        f"<html>\r\n<head><title>{status_line}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status_line}</h1></center>\r\n<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n"
    )


def gateway_error(
    status: int, message: str, *, code: str = "", request_id: str | None = None, headers: Mapping[str, str] = ()
) -> Respond:
    """An error in the gateway's own shape (shape 1 of providers.md)."""
    rid = request_id or uuid.uuid4().hex
    body = {"error": {"message": f"{message} (request id: {rid})", "type": "comet_api_error", "param": "", "code": code}}
    return Respond(status, body, headers)


def kling_error(
    status: int, code: int, message: str, *, request_id: str | None = None, headers: Mapping[str, str] = ()
) -> Respond:
    """An error in Kling's own shape, passed through (shape 2)."""
    return Respond(status, {"code": code, "message": message, "request_id": request_id or str(uuid.uuid4())}, headers)


def relay_error(status: int, code: str, message: str) -> Respond:
    """An error in the task-relay shape (shape 3)."""
    return Respond(status, {"code": code, "message": message, "data": None})


NOT_FOUND_PAGE = Respond(404, _html_page("404 Not Found"), _HTML)

#: Canned answers for every row of the CometAPI error table, by name. All are not billed;
#: for "processed, then failed" use ``dataclasses.replace(COMET_ERRORS[name], billed=True)``.
COMET_ERRORS: Mapping[str, Respond] = {
    # 400: bad request or bad image; content policy
    "bad_request_1200": kling_error(400, 1200, "Invalid request parameters", request_id="canned-1200"),
    "bad_image_1201": kling_error(400, 1201, "Invalid parameters: image invalid", request_id="canned-1201"),
    "policy_1300": kling_error(400, 1300, "Trigger strategy of the platform", request_id="canned-1300"),
    "content_policy_1301": kling_error(
        400, 1301, "Trigger the content security policy of the platform", request_id="canned-1301"
    ),
    # 401: the key
    "bad_token": gateway_error(401, "invalid token", code="invalid_request", request_id="canned-401"),
    "no_token": gateway_error(401, "no token provided", request_id="canned-401-empty"),
    "auth_1000": kling_error(401, 1000, "Authentication failed", request_id="canned-1000"),
    "auth_1001": kling_error(401, 1001, "Authorization is empty", request_id="canned-1001"),
    "auth_1002": kling_error(401, 1002, "Authorization is invalid", request_id="canned-1002"),
    "auth_1003": kling_error(401, 1003, "Authorization is not yet valid", request_id="canned-1003"),
    "auth_1004": kling_error(401, 1004, "Authorization has expired", request_id="canned-1004"),
    # 403: not allowed; out of balance
    "forbidden": gateway_error(403, "access to this model is not allowed", code="", request_id="canned-403"),
    "no_balance": gateway_error(
        403, "user quota is not enough", code="insufficient_user_quota", request_id="canned-403-quota"
    ),
    # 404 / 301 / HTML: a wrong base URL or path
    "not_found_html": NOT_FOUND_PAGE,
    # A relative Location, so a client that follows it stays on 127.0.0.1.
    "moved_301": Respond(301, _html_page("301 Moved Permanently"), {**_HTML, "Location": "/console/"}),
    "html_200": Respond(
        200, "<!DOCTYPE html><html><head><title>CometAPI</title></head><body><h1>CometAPI</h1></body></html>", _HTML
    ),
    # 429: rate or concurrency limits; account in arrears
    "rate_1302": kling_error(429, 1302, "API request is too fast, exceeding the rate limit", request_id="canned-1302"),
    "concurrency_1303": kling_error(429, 1303, "parallel task over resource pack limit", request_id="canned-1303"),
    "concurrency_1303_retry_after": kling_error(
        429, 1303, "parallel task over resource pack limit", request_id="canned-1303-ra", headers={"Retry-After": "2"}
    ),
    "bare_429": Respond(429),
    "bare_429_text": Respond(429, "Too Many Requests"),
    "account_1100": kling_error(429, 1100, "Account exception", request_id="canned-1100"),
    "arrears_1101": kling_error(429, 1101, "Account in arrears (postpaid scenario)", request_id="canned-1101"),
    "pack_1102": kling_error(429, 1102, "Resource pack depleted or expired (prepaid scenario)", request_id="canned-1102"),
    # 500 with invalid_request: a malformed request
    "invalid_request_500": gateway_error(
        500, "invalid request body", code="invalid_request", request_id="canned-500-invalid"
    ),
    # 5xx: upstream faults and timeouts, JSON and not
    "server_error_5000": kling_error(500, 5000, "Server internal error", request_id="canned-5000"),
    "unavailable_5001": kling_error(
        503, 5001, "Server temporarily unavailable, usually due to maintenance", request_id="canned-5001"
    ),
    "timeout_5002": kling_error(504, 5002, "Server internal timeout, usually due to backlog", request_id="canned-5002"),
    "gateway_500": gateway_error(500, "upstream error: do request failed", code="do_request_failed", request_id="canned-500"),
    "bad_gateway_502_html": Respond(502, _html_page("502 Bad Gateway"), _HTML),
    "unavailable_503_text": Respond(503, "Service Unavailable"),
    "gateway_timeout_504_empty": Respond(504),
    "cloudflare_524_html": Respond(
        524,
        "<!DOCTYPE html><html><head><title>api.cometapi.com | 524: A timeout occurred</title></head>"
        "<body><h1>A timeout occurred</h1><p>Error code 524</p></body></html>",
        _HTML,
    ),
    "plain_500": Respond(500, "Internal Server Error"),
    "empty_500": Respond(500),
    # the task-relay shape
    "relay_400": relay_error(400, "invalid_image", "image could not be processed"),
    "relay_500": relay_error(500, "fail_to_fetch_task", "task relay failed"),
    # a 200 that is an error
    "code_not_zero_200": Respond(
        200, {"code": 1201, "message": "image invalid", "request_id": "canned-200-1201", "data": None}
    ),
}


def derived_flags(digest_hex: str) -> dict[str, bool]:
    """The default flags of an image, from the first byte of its hash.

    Consistent like real answers: a face without hair implies a head; a head or clothing
    implies a main subject.
    """
    bits = int(digest_hex[:2], 16)
    head = bool(bits & 1)
    cloth = bool(bits & 4)
    return {
        "head_seg": head,
        "face_seg": head and bool(bits & 2),
        "cloth_seg": cloth,
        "object_seg": head or cloth or bool(bits & 8),
    }


class FakeCometAPI(FakeServer):
    """CometAPI's Kling image recognition, faithful to the vendor's contract.

    Toggles (plain attributes, settable while serving): ``balance_exhausted`` (every call
    403 ``insufficient_user_quota``), ``arrears`` (every call 429 Kling 1101),
    ``extra_types`` (answers carry an undocumented type too), ``omit_optional`` (answers
    look like the vendor page's example: no ``url``, ``request_id`` or
    ``final_unit_deduction``). The four types come in a different order each time.
    """

    name = "cometapi"
    endpoints = ("recognize",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.balance_exhausted = False
        self.arrears = False
        self.extra_types = False
        self.omit_optional = False
        self._flags: dict[str, dict[str, bool | None]] = {}
        self._flags_lock = threading.Lock()
        self._order = random.Random(0)

    # -- configuring answers --

    def set_flags(
        self,
        sha256_or_url: str,
        *,
        head_seg: bool | None = False,
        face_seg: bool | None = False,
        cloth_seg: bool | None = False,
        object_seg: bool | None = False,
    ) -> None:
        """Fix the answer for one image: by the sha256 of its bytes, or by the URL sent.

        A flag given as None leaves that type out of the answer altogether.
        """
        flags = {"head_seg": head_seg, "face_seg": face_seg, "cloth_seg": cloth_seg, "object_seg": object_seg}
        with self._flags_lock:
            self._flags[sha256_or_url] = flags

    def flags_for(self, sha256_or_url: str) -> dict[str, bool | None]:
        """What the fake answers for an image: the registered flags, else :func:`derived_flags`
        of the sha256 (of the URL's text, for a URL)."""
        with self._flags_lock:
            registered = self._flags.get(sha256_or_url)
        if registered is not None:
            return dict(registered)
        if sha256_or_url.startswith(("http://", "https://")):
            return derived_flags(hashlib.sha256(sha256_or_url.encode("utf-8")).hexdigest())
        return derived_flags(sha256_or_url)

    # -- FakeServer hooks --

    def endpoint_for(self, method: str, path: str) -> str | None:
        return "recognize" if method == "POST" and path == RECOGNIZE_PATH else None

    def auth_failure(self, endpoint: str, headers: Mapping[str, str]) -> Respond | None:
        token = bearer_token(headers)
        if token is None:
            return gateway_error(401, "no token provided")
        if token != self.key:
            return gateway_error(401, "invalid token", code="invalid_request")
        return None

    def not_found_answer(self) -> Respond:
        return NOT_FOUND_PAGE

    def busy_answer(self) -> Respond:
        return kling_error(429, 1303, "parallel task over resource pack limit")

    def process(self, endpoint: str, request: Incoming) -> Respond:
        if self.balance_exhausted:
            return gateway_error(403, "user quota is not enough", code="insufficient_user_quota")
        if self.arrears:
            return kling_error(429, 1101, "Account in arrears (postpaid scenario)")
        if request.json is None:
            return gateway_error(500, "invalid request body", code="invalid_request")
        image = request.json.get("image") if isinstance(request.json, dict) else None
        if not isinstance(image, str) or not image:
            return kling_error(400, 1200, "Invalid request parameters: image is required")
        if image.startswith(("http://", "https://")):
            return self._success(self.flags_for(image))  # never fetched: answered from the flags
        if image.startswith("data:"):
            return kling_error(400, 1201, "image invalid: send raw base64 without a data: prefix")
        try:
            data = base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            return kling_error(400, 1201, "image invalid: not base64")
        try:
            facts = inspect_image(data, max_ratio=Fraction(5, 2))
        except BadImage as exc:
            return kling_error(400, 1201, f"image invalid: {exc}")
        return self._success(self.flags_for(facts.sha256))

    def _success(self, flags: Mapping[str, bool | None]) -> Respond:
        request_id = str(uuid.uuid4())
        entries = []
        for kind, contained in [*flags.items(), *([(EXTRA_TYPE, True)] if self.extra_types else [])]:
            if contained is None:
                continue
            entry: dict[str, Any] = {"type": kind, "is_contain": contained}
            if not self.omit_optional:
                entry["url"] = f"{self.base_url}/results/{request_id}/{kind}.png" if contained else ""
            entries.append(entry)
        with self._flags_lock:
            self._order.shuffle(entries)
        if self.omit_optional:
            body: dict[str, Any] = {"code": 0, "message": "SUCCEED", "data": {"task_result": {"images": entries}}}
        else:
            body = {
                "code": 0,
                "message": "SUCCEED",
                "request_id": request_id,
                "data": {"final_unit_deduction": COST, "task_result": {"images": entries}},
            }
        return Respond(200, body, billed=True)
