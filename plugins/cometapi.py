"""CometAPI's relay of Kling image recognition: four flags per image, billed per call.

``POST {base}/kling/v1/videos/image-recognize`` with the image as raw base64. Errors come in
three shapes (the gateway's ``{"error": {...}}``, Kling's own ``{"code": 1303, ...}``, a task
relay's ``{"code": "text", ...}``) or as no JSON at all; every one is sorted into
:mod:`core.errors` as ``shared/providers.md`` says.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from core.errors import ImageRejected, OutcomeUnknown, ProtocolError, ProviderError, ProviderStopped
from core.hookspecs import hookimpl
from core.http import HttpProvider, Reply, connection_settings, say
from core.models import FLAG_TYPES, CheckResult, ProbedImage
from core.providers import CheckContext

RECOGNIZE_PATH = "/kling/v1/videos/image-recognize"

# Kling's own error codes (its API reference, "error codes").
_BAD_KEY = range(1000, 1005)  # authentication failed, empty, invalid, not yet valid, expired
_ARREARS = range(1100, 1103)  # account exception, in arrears, resource pack used up or expired
_BAD_IMAGE = (1200, 1201)  # invalid request parameters
_POLICY = (1300, 1301)  # platform policy, content security
_TOO_FAST = (1302, 1303)  # rate limit, too many tasks at once
_GATEWAY_REQUEST_ID = re.compile(r"\(request id: ([^)\s]+)\)")


class ImageBody:
    """The request body ``{"image": "<base64 of the file>"}``, encoded while it is sent.

    A readable object with a length, which requests sends with a Content-Length, a block
    at a time: a 10 MB photo in flight costs its own bytes and a block, not a 13 MB
    base64 copy, a JSON text of it and that text's encoding besides.
    """

    _HEAD = b'{"image":"'
    _TAIL = b'"}'

    def __init__(self, data: bytes) -> None:
        self._image = memoryview(data)
        self._at = 0
        self._parts_left = [self._TAIL, self._HEAD]  # popped from the end
        self._length = len(self._HEAD) + 4 * -(-len(data) // 3) + len(self._TAIL)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int | None = -1) -> bytes:
        """The next piece of the body: about ``size`` bytes (everything left when negative)."""
        if len(self._parts_left) == 2:
            return self._parts_left.pop()
        if self._at < len(self._image):
            # Whole groups of 3 bytes, so each piece encodes to base64 without padding.
            take = len(self._image) if size is None or size < 0 else max(3, size // 4 * 3)
            piece = self._image[self._at : self._at + take]
            self._at += len(piece)
            return base64.b64encode(piece)
        return self._parts_left.pop() if self._parts_left else b""


class CometAPIProvider(HttpProvider):
    id = "cometapi"
    label = "CometAPI (Kling image recognition)"
    service = "CometAPI"
    key_env = "KLING_PREFLIGHT_COMETAPI_KEY"
    retries_are_free = False
    remote = True
    cost_note = "Each call is billed by CometAPI; its answer says how much (final_unit_deduction)."
    default_concurrency = 4
    default_base_url = "https://api.cometapi.com"
    settings_spec = connection_settings(default_base_url, default_concurrency)
    rate_limit_base_wait = 1.0  # Kling asks for backoff from at least 1 s
    max_outcome_unknown_retries = 0  # a retry after an unknown outcome may be billed twice
    api_paths = (RECOGNIZE_PATH,)
    unknown_outcome_messages = {
        "recognize": "The run was interrupted while CometAPI was checking this image, so it may have been billed; "
        "`scan --retry-failed` checks it again."
    }

    def journal_kind(self, image: ProbedImage, memo) -> str:
        return "recognize"  # every call is billed

    def check(self, image: ProbedImage, data: bytes, ctx: CheckContext) -> CheckResult:
        """Send the image once and read its four flags.

        :param image: the probed file (unused beyond its bytes: Kling reads the format itself).
        :param data: the file's bytes, sent as base64 without a ``data:`` prefix.
        :param ctx: its cancel flag is honoured before sending and while the answer arrives.
        :returns: flags matched by ``type``, result URLs, cost and request id; ``raw`` is the answer.
        :raises core.errors.ProviderError: as the error table in ``providers.md`` says.
        """
        client = self.client
        reply = client.post(RECOGNIZE_PATH, cancel=ctx.cancel, data=ImageBody(data), content_type="application/json")
        body = reply.json_object()
        if reply.status != 200 or body is None or not _is_success(body):
            raise self._error_for(reply, body)
        return self._result(reply, body)

    def verify(self) -> str:
        """Prove the key and base URL with a call that costs nothing.

        The call sends an empty image. Kling refuses it while checking the parameters
        (code 1200/1201, HTTP 400), before any recognition runs, and CometAPI bills only
        answers that succeed (the success answer is where it reports the deduction). The
        gateway checks the key first, so a refusal about the image proves the key is good.

        :returns: a sentence saying what was verified.
        :raises core.errors.ProviderError: the key, base URL or account is wrong, in words.
        """
        client = self.client
        reply = client.post(RECOGNIZE_PATH, json_body={"image": ""})
        body = reply.json_object()
        if reply.status == 200 and body is not None and _is_success(body):
            raise client.error(
                ProtocolError, say("CometAPI accepted an empty image, which Kling refuses: this is not CometAPI"), reply
            )
        error = self._error_for(reply, body)
        if isinstance(error, ImageRejected):
            return f"CometAPI at {client.base_url} accepted the key."
        raise error

    def _result(self, reply: Reply, body: dict[str, Any]) -> CheckResult:
        data = body.get("data")
        task_result = data.get("task_result") if isinstance(data, dict) else None
        images = task_result.get("images") if isinstance(task_result, dict) else None
        if not isinstance(images, list) or not all(isinstance(e, dict) for e in images):
            raise self.client.error(ProtocolError, say("CometAPI answered without recognition results"), reply)
        flags: dict[str, bool | None] = {}
        urls: dict[str, str] = {}
        for entry in images:
            kind = entry.get("type")
            if not isinstance(kind, str):
                continue
            contains = entry.get("is_contain")
            if kind in FLAG_TYPES and isinstance(contains, bool):
                flags[kind] = contains
            url = entry.get("url")
            if isinstance(url, str) and url:
                urls[kind] = url
        cost = data.get("final_unit_deduction")
        return CheckResult(
            **{name: flags.get(name) for name in FLAG_TYPES},
            result_urls=urls,
            cost=None if cost is None or cost == "" else str(cost),
            request_id=_text(body.get("request_id")) or reply.header_request_id(),
            raw=reply.text,
        )

    def _error_for(self, reply: Reply, body: dict[str, Any] | None) -> ProviderError:
        """Sort a failed answer: a known Kling code first, then the gateway's code, then the
        HTTP status."""
        client = self.client
        status = reply.status
        detail, code = _detail_and_code(body, reply)
        kling = int(code) if code is not None and code.isdigit() else None
        request_id = _request_id(body, detail) or reply.header_request_id()

        def make(cls: type[ProviderError], message: str) -> ProviderError:
            return client.error(cls, message, reply, provider_code=code, request_id=request_id)

        if 300 <= status < 400:
            return client.wrong_base_url(reply)
        if status == 500 and code == "invalid_request":
            return make(ImageRejected, say("CometAPI says the request was malformed", detail))
        if status >= 500:
            return client.server_fault(reply, detail, provider_code=code, request_id=request_id)
        if kling in _BAD_KEY:
            return make(ProviderStopped, say("CometAPI rejected the key", detail))
        if kling in _ARREARS:
            return make(ProviderStopped, say("The Kling account behind CometAPI is in arrears or out of resources", detail))
        if kling in _BAD_IMAGE:
            return make(ImageRejected, say("Kling refused the image", detail))
        if kling in _POLICY:
            return make(ImageRejected, say("Kling refused the image under its content policy", detail))
        if kling in _TOO_FAST or status == 429:
            return client.rate_limited(reply, detail, provider_code=code, request_id=request_id)
        if code == "insufficient_user_quota":
            return make(ProviderStopped, say("CometAPI says the account is out of balance", detail))
        if body is None and reply.looks_like_html():
            return client.wrong_base_url(reply)
        if status == 400:
            return make(ImageRejected, say("CometAPI refused the request", detail))
        if status == 401:
            return make(ProviderStopped, say("CometAPI rejected the key", detail))
        if status == 403:
            return make(ProviderStopped, say("CometAPI does not allow this (is the balance used up?)", detail))
        if status in (404, 405):
            return client.wrong_base_url(reply)
        if status == 413:
            return make(ImageRejected, say("CometAPI says the image is too large", detail))
        if status == 200 and body is not None and kling is not None and kling >= 5000:
            return make(OutcomeUnknown, say("Kling failed on its side; the request may have been processed", detail))
        if body is None:
            return make(ProtocolError, say(f"CometAPI answered HTTP {status} with something that is not JSON", detail))
        return make(ProtocolError, say(f"CometAPI answered HTTP {status} with an error we do not know", detail))


def _is_success(body: dict[str, Any]) -> bool:
    return "error" not in body and body.get("code") in (0, "0")


def _detail_and_code(body: dict[str, Any] | None, reply: Reply) -> tuple[str, str | None]:
    """The server's message and error code from any of the three shapes, or the body's
    text when it is not JSON (a web page gives no useful words)."""
    if body is None:
        return ("" if reply.looks_like_html() else reply.text), None
    gateway = body.get("error")
    if isinstance(gateway, dict):
        return _text(gateway.get("message")) or "", _text(gateway.get("code"))
    if isinstance(gateway, str):  # some relays answer {"error": "text"}
        return gateway, _text(body.get("code"))
    return _text(body.get("message")) or "", _text(body.get("code"))


def _request_id(body: dict[str, Any] | None, detail: str) -> str | None:
    own = _text(body.get("request_id")) if body is not None else None
    if own:
        return own
    found = _GATEWAY_REQUEST_ID.search(detail)  # the gateway writes "(request id: ...)"
    return found.group(1) if found else None


def _text(value: Any) -> str | None:
    """A JSON scalar as text (codes come as numbers or strings); None for nothing."""
    if value is None or value == "" or isinstance(value, (dict, list, bool)):
        return None
    return str(value)


@hookimpl
def register_providers(register) -> None:
    register(CometAPIProvider)
