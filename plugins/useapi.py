"""useapi.net's relay of Kling face recognition: free and unlimited, in two calls.

First the image is uploaded as an asset of the user's Kling account (``POST /v1/kling/assets/``,
raw bytes), then ``POST /v1/kling/images/recognize-faces`` looks at the uploaded URL. An upload
creates an asset each time, so each distinct image is uploaded once: its URL goes into the
memo the moment the upload succeeds, before the face call can fail.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from core.errors import CreatedMaybe, ImageRejected, OutcomeUnknown, ProtocolError, ProviderError, ProviderStopped
from core.hookspecs import hookimpl
from core.http import HttpProvider, Reply, clip, connection_settings, say
from core.models import CheckResult, Face, ProbedImage
from core.providers import CheckContext, SettingSpec

UPLOAD_PATH = "/v1/kling/assets/"
FACES_PATH = "/v1/kling/images/recognize-faces"
#: Account lookup: ``/v1/kling/accounts/<email>`` answers 404 for an email useapi does not know.
ACCOUNTS_PATH = "/v1/kling/accounts/"
#: The memo kind under which an image's uploaded URL is remembered.
UPLOAD_MEMO = "upload_url"
#: Pillow's format name -> the Content-Type useapi accepts for an upload.
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}


class UseAPIProvider(HttpProvider):
    id = "useapi"
    label = "useapi.net (Kling face recognition)"
    service = "useapi"
    key_env = "KLING_PREFLIGHT_USEAPI_KEY"
    retries_are_free = True  # "an unlimited number of face detections for free"
    remote = True
    cost_note = "Face recognition is free with any Kling plan; a useapi.net subscription is needed."
    default_concurrency = 2
    default_base_url = "https://api.useapi.net"
    settings_spec = connection_settings(default_base_url, default_concurrency) + (
        SettingSpec("email", "Kling account email", "", str,
                    "Which of your useapi Kling accounts to use; needed only when you have several."),
    )
    rate_limit_base_wait = 10.0  # the vendor's own scripts wait 10 s, six times
    max_outcome_unknown_retries = 1  # Kling answers 500 for moderation too: once is enough
    api_paths = (UPLOAD_PATH, FACES_PATH)
    unknown_outcome_messages = {
        UPLOAD_MEMO: "The run was interrupted while this image was being uploaded to useapi, so it may already be "
        "an asset in your Kling account; `scan --retry-failed` uploads it again."
    }

    def journal_kind(self, image: ProbedImage, memo) -> str | None:
        """An upload creates an asset in the user's account: journaled, unless the memo
        already holds the image's URL (then no upload is made)."""
        if image.sha256 and memo.get(image.sha256, UPLOAD_MEMO) is not None:
            return None
        return UPLOAD_MEMO

    @property
    def email(self) -> str:
        return (self.config.get("email") or "").strip()

    def check(self, image: ProbedImage, data: bytes, ctx: CheckContext) -> CheckResult:
        """Upload the image (unless the memo has its URL) and ask for its faces.

        :param image: its ``format`` (the real content, not the extension) sets the
            upload's Content-Type; its ``sha256`` keys the memo.
        :param data: the file's bytes, uploaded as they are.
        :param ctx: cancel flag and the memo of uploaded URLs.
        :returns: faces with boxes and crops; face_seg and head_seg True when there is a face,
            face_seg False and head_seg unknown when there is none.
        :raises core.errors.ProviderError: as the useapi error table in ``providers.md`` says.
        """
        client = self.client
        content_type = CONTENT_TYPES.get(image.format or "")
        if content_type is None:
            raise ImageRejected(say(f"useapi takes only JPEG and PNG files, and this one is {image.format or 'unknown'}"))
        upload_body: dict[str, Any] | None = None
        url = ctx.memo.get(image.sha256, UPLOAD_MEMO) if image.sha256 else None
        remembered = url is not None
        if url is None:
            upload_body, url = self._upload(image, data, content_type, ctx)
        reply = client.post(FACES_PATH, cancel=ctx.cancel, json_body={**self._email_field(), "imageReference": url})
        if remembered and _stale_reference(reply):
            # The remembered asset is gone (expired or deleted): upload once more, and the
            # new URL replaces the old one in the memo. Journaled first, like any upload.
            if ctx.journal is not None:
                ctx.journal(image, UPLOAD_MEMO)
            upload_body, url = self._upload(image, data, content_type, ctx)
            reply = client.post(FACES_PATH, cancel=ctx.cancel, json_body={**self._email_field(), "imageReference": url})
        faces_body = self._answer(reply)
        status = faces_body.get("status")
        if status not in (None, 0):
            raise client.error(
                ProtocolError, say(f"useapi answered status {clip(' '.join(str(status).split()), 40)}", _text_of(faces_body.get("message"))), reply
            )
        faces = _faces(faces_body.get("faceItems"))
        if faces is None:
            raise client.error(ProtocolError, say("useapi's face answer could not be read"), reply)
        found = bool(faces)
        return CheckResult(
            head_seg=True if found else None,  # a head seen from behind shows no face
            face_seg=found,
            faces=faces,
            request_id=reply.header_request_id(),
            raw=json.dumps({"upload": upload_body, "imageReference": url, "faces": faces_body}, ensure_ascii=False),
        )

    def _upload(self, image: ProbedImage, data: bytes, content_type: str, ctx: CheckContext) -> tuple[dict[str, Any], str]:
        """Upload the image; its URL goes into the memo at once.

        :returns: the upload's answer and the URL.
        """
        client = self.client
        try:
            reply = client.post(UPLOAD_PATH, cancel=ctx.cancel, data=data, content_type=content_type, params=self._email_field())
            body = self._answer(reply)
        except OutcomeUnknown as exc:
            # Face recognition is free to retry, an upload is not: it may have made an asset
            # already, and a second try would make another.
            raise CreatedMaybe(
                f"{exc.message} The upload may already be an asset in your Kling account, so it is not "
                "sent again on its own; `scan --retry-failed` uploads it again.",
                status=exc.status, provider_code=exc.provider_code, raw=exc.raw, request_id=exc.request_id,
            ) from exc
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise client.error(ProtocolError, say("useapi's upload answer has no URL"), reply)
        if image.sha256:
            ctx.memo.put(image.sha256, UPLOAD_MEMO, url)
        return body, url

    def verify(self) -> str:
        """Prove the token and the account with a call that costs nothing.

        recognize-faces without ``imageReference`` is refused with a 400 "Parameter
        imageReference is required" only once the token and the account have been accepted.

        :returns: a sentence saying what was verified.
        :raises core.errors.ProviderError: the token, subscription, account or base URL is
            wrong, in words.
        """
        client = self.client
        reply = client.post(FACES_PATH, json_body=self._email_field())
        body = reply.json_object()
        if reply.status == 400 and body is not None and "imagereference" in str(body.get("error", "")).lower():
            if self.email:
                self._verify_account()
            account = f"the account {self.email}" if self.email else "its Kling account"
            return f"useapi at {client.base_url} accepted the token and {account}."
        if reply.status == 200:
            raise client.error(
                ProtocolError, say("The server accepted a face call without an image, which useapi refuses: is the base URL right?"), reply
            )
        if reply.status == 400 and not reply.looks_like_html():
            raise client.error(ProviderStopped, say("useapi refused the settings", _error_text(body, reply)), reply)
        raise self._error_for(reply, body)

    def _verify_account(self) -> None:
        """Ask useapi about the configured email: the face call may refuse a missing image
        before it looks at the email, so its 400 alone does not prove the account.

        :raises core.errors.ProviderError: useapi does not know the email, or answered
            something else than the account.
        """
        client = self.client
        reply = client.get(ACCOUNTS_PATH + quote(self.email, safe="@"))
        if reply.status == 200 and reply.json_object() is not None:
            return
        if reply.status == 404 and not reply.looks_like_html():
            raise client.error(ProviderStopped, self._unknown_account(), reply)
        raise self._error_for(reply, reply.json_object())

    def _email_field(self) -> dict[str, str]:
        """The account's email as a query parameter or a JSON field; empty when not set."""
        return {"email": self.email} if self.email else {}

    def _answer(self, reply: Reply) -> dict[str, Any]:
        """The body of a successful answer.

        :raises core.errors.ProviderError: the answer is an error or not a JSON object.
        """
        body = reply.json_object()
        if reply.status != 200 or body is None:
            raise self._error_for(reply, body)
        return body

    def _error_for(self, reply: Reply, body: dict[str, Any] | None) -> ProviderError:
        client = self.client
        status = reply.status
        detail = _error_text(body, reply)
        code = body.get("code") if body is not None else None
        kw = {"provider_code": None if code is None else str(code)}
        if 300 <= status < 400:
            return client.wrong_base_url(reply)
        if status == 429:
            return client.rate_limited(reply, detail, **kw)
        if status >= 500:
            return client.server_fault(reply, detail, **kw)
        if reply.looks_like_html():
            return client.wrong_base_url(reply)
        if status == 400:
            return client.error(ImageRejected, say("useapi refused the request", detail), reply, **kw)
        if status == 401:
            return client.error(ProviderStopped, say("useapi rejected the API token", detail), reply, **kw)
        if status == 402:
            return client.error(
                ProviderStopped, say("useapi says the subscription is missing or has expired", detail), reply, **kw
            )
        if status == 403:
            return client.error(ProviderStopped, say("useapi does not allow this", detail), reply, **kw)
        if status == 404 and "account" in reply.text.lower():
            return client.error(ProviderStopped, self._unknown_account(), reply, **kw)
        if status in (404, 405):
            return client.wrong_base_url(reply)
        if status == 413:
            return client.error(ImageRejected, say("useapi says the image is too large", detail), reply, **kw)
        if status == 200:
            return client.error(ProtocolError, say("useapi answered something that is not a JSON object"), reply)
        return client.error(ProtocolError, say(f"useapi answered HTTP {status}, which it does not document", detail),
                            reply, **kw)

    def _unknown_account(self) -> str:
        # useapi's own words ("Account configuration not found...") stay in ``raw``.
        if self.email:
            return say(f"useapi does not know the account {self.email}: set the email in settings")
        return say("useapi found no single Kling account to use: set the email of one of your accounts in settings")


def _stale_reference(reply: Reply) -> bool:
    """Whether a face call refused the image reference itself: a remembered upload URL that
    no longer works (useapi says "Unable to load imageReference ...")."""
    if reply.status not in (400, 404, 410):
        return False
    body = reply.json_object()
    text = _error_text(body, reply).lower()
    return "imagereference" in text.replace(" ", "") and "required" not in text


def _faces(items: Any) -> tuple[Face, ...] | None:
    """Faces from ``faceItems``; missing and empty both mean none. None when unreadable."""
    if items is None:
        return ()
    if not isinstance(items, list):
        return None
    faces = []
    for item in items:
        face = _face(item) if isinstance(item, dict) else None
        if face is None:
            return None
        faces.append(face)
    return tuple(faces)


def _face(item: dict[str, Any]) -> Face | None:
    box = None
    for argument in item.get("arguments") or ():
        if isinstance(argument, dict) and argument.get("name") == "face_bound":
            box = argument.get("value")
    if isinstance(box, str):  # documented: a JSON string inside the JSON
        try:
            box = json.loads(box)
        except ValueError:
            return None
    if not isinstance(box, dict):
        return None
    try:
        x, y, width, height = (int(round(float(box[k]))) for k in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    crops = tuple(
        r["url"]
        for r in item.get("resources") or ()
        if isinstance(r, dict) and r.get("type") == "image" and isinstance(r.get("url"), str) and r["url"]
    )
    return Face(x=x, y=y, width=width, height=height, crops=crops)


def _error_text(body: dict[str, Any] | None, reply: Reply) -> str:
    """useapi's words: ``{"error": "..."}``, or the plain text of a bare 404."""
    if body is None:
        return "" if reply.looks_like_html() else reply.text
    return _text_of(body.get("error")) or _text_of(body.get("message"))


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


@hookimpl
def register_providers(register) -> None:
    register(UseAPIProvider)
