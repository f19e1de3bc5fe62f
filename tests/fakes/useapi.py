"""A fake of useapi.net's Kling face recognition, per ../../../shared/providers.md section B.

Two calls, both with ``Authorization: Bearer <token>``:

- ``POST /v1/kling/assets/?email=...`` with the raw image as the body (endpoint "upload");
- ``POST /v1/kling/images/recognize-faces`` with JSON ``{"email", "imageReference"}``
  (endpoint "faces").

Checks, in order: the token (401), ``subscription_required`` (402), the account (404, plain
text), then the request itself (400). Uploaded images are served back at their URL
(``GET /assets/<sha256>.<ext>``, endpoint "asset", no token needed, like a CDN). Every row
of the vendor's error table is in :data:`USEAPI_ERRORS`, ready to enqueue.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import unquote
from typing import Any, Iterable, Mapping, Sequence

from .server import BadImage, FakeServer, ImageFacts, Incoming, Respond, bearer_token, inspect_image

UPLOAD_PATHS = ("/v1/kling/assets/", "/v1/kling/assets")
FACES_PATH = "/v1/kling/images/recognize-faces"
#: ``GET /v1/kling/accounts/<email>``: the account's configuration, or a plain-text 404.
ACCOUNTS_PREFIX = "/v1/kling/accounts/"
ASSET_PREFIX = "/assets/"
DEFAULT_ACCOUNT = "creator@example.com"
VALID_CONTENT_TYPES = "image/png,image/jpeg,video/mp4"

_TYPE_BY_FORMAT = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png")}

UNAUTHORIZED = Respond(401, {"error": "Unauthorized", "code": 401})
SUBSCRIPTION_REQUIRED = Respond(402, {"error": "Subscription required", "code": 402})
ACCOUNTS_BUSY = Respond(429, {"error": "All configured Kling accounts are busy, please try again later"})
NOT_FOUND_TEXT = Respond(404, "404 Not Found")

#: Canned answers for every row of the useapi error table, by name (none billed).
USEAPI_ERRORS: Mapping[str, Respond] = {
    "bad_request_400": Respond(400, {"error": "Parameter imageReference is required"}),
    "bad_type_400": Respond(
        400, {"error": f"Content-Type image/gif is not supported. Valid values: {VALID_CONTENT_TYPES}"}
    ),
    "unauthorized_401": UNAUTHORIZED,
    "subscription_402": SUBSCRIPTION_REQUIRED,
    "account_404": Respond(404, "Account configuration not found for email unknown@example.com"),
    "not_found_404": NOT_FOUND_TEXT,
    "busy_429": ACCOUNTS_BUSY,
    "moderation_500": Respond(500, {"error": "Image failed content moderation"}),
    "fault_500": Respond(500, {"error": "Internal server error, please try again later"}),
}


class FakeUseAPI(FakeServer):
    """useapi.net's Kling asset upload and face recognition.

    :param accounts: the configured Kling account emails (default one,
        ``creator@example.com``); ``email`` is optional only when there is exactly one.

    Toggles: ``subscription_required`` (every call 402), ``omit_file_name`` (uploads answer
    without ``fileName``), ``no_faces_shape`` ("empty": ``faceItems: []``; "missing": no
    ``faceItems`` key) for images without faces, ``reference_checked_first`` (the face call
    refuses a missing ``imageReference`` before it looks at the email, so a wrong email
    passes that refusal).
    """

    name = "useapi"
    endpoints = ("upload", "faces", "asset", "accounts")

    def __init__(self, *, accounts: Sequence[str] = (DEFAULT_ACCOUNT,), **options: Any) -> None:
        super().__init__(**options)
        self.accounts = tuple(accounts)
        self.subscription_required = False
        self.omit_file_name = False
        self.no_faces_shape = "empty"
        self.reference_checked_first = False
        self._state_lock = threading.Lock()
        self._assets: dict[str, tuple[ImageFacts, bytes]] = {}
        self._uploads: list[str] = []
        self._faces: dict[str, tuple[tuple[int, int, int, int], ...]] = {}

    # -- configuring and observing --

    def set_faces(self, sha256: str, boxes: Iterable[tuple[int, int, int, int]]) -> None:
        """Fix the faces found in one image, as (x, y, width, height) boxes in pixels."""
        with self._state_lock:
            self._faces[sha256] = tuple(tuple(box) for box in boxes)

    @property
    def uploads(self) -> list[str]:
        """The sha256 of every successful upload, in order (repeats included)."""
        with self._state_lock:
            return list(self._uploads)

    def asset_url(self, sha256: str, image_format: str) -> str:
        """The URL an upload of this image gets ("JPEG" or "PNG")."""
        return f"{self.base_url}{ASSET_PREFIX}{sha256}.{_TYPE_BY_FORMAT[image_format][1]}"

    def reset(self) -> None:
        """Also forget the uploaded assets: their URLs stop working, as expired ones would."""
        super().reset()
        with self._state_lock:
            self._assets.clear()
            self._uploads.clear()

    # -- FakeServer hooks --

    def endpoint_for(self, method: str, path: str) -> str | None:
        if method == "POST" and path in UPLOAD_PATHS:
            return "upload"
        if method == "POST" and path == FACES_PATH:
            return "faces"
        if method == "GET" and path.startswith(ASSET_PREFIX):
            return "asset"
        if method == "GET" and path.startswith(ACCOUNTS_PREFIX):
            return "accounts"
        return None

    def auth_failure(self, endpoint: str, headers: Mapping[str, str]) -> Respond | None:
        if endpoint == "asset" or bearer_token(headers) == self.key:
            return None
        return UNAUTHORIZED

    def not_found_answer(self) -> Respond:
        return NOT_FOUND_TEXT

    def busy_answer(self) -> Respond:
        return ACCOUNTS_BUSY

    def process(self, endpoint: str, request: Incoming) -> Respond:
        if endpoint == "asset":
            return self._serve_asset(request.path)
        if self.subscription_required:
            return SUBSCRIPTION_REQUIRED
        if endpoint == "upload":
            return self._upload(request)
        if endpoint == "accounts":
            return self._account(request)
        return self._recognize_faces(request)

    def forget_assets(self) -> None:
        """Delete every uploaded asset, as the user might in Kling: their URLs stop working.
        The log of uploads is kept."""
        with self._state_lock:
            self._assets.clear()

    # -- the calls --

    def _account_missing(self, email: Any) -> Respond | None:
        if email in (None, "") and len(self.accounts) == 1:
            return None
        if isinstance(email, str) and email in self.accounts:
            return None
        if email in (None, ""):
            return Respond(404, "Account configuration not found: several accounts are configured, specify email")
        return Respond(404, f"Account configuration not found for email {email}")

    def _upload(self, request: Incoming) -> Respond:
        refusal = self._account_missing(request.query.get("email"))
        if refusal is not None:
            return refusal
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type not in ("image/jpeg", "image/png", "video/mp4"):
            return Respond(
                400,
                {"error": f"Content-Type {content_type or 'undefined'} is not supported. Valid values: {VALID_CONTENT_TYPES}"},
            )
        try:
            facts = inspect_image(request.body)
        except BadImage as exc:
            return Respond(400, {"error": f"Unable to read the uploaded {content_type} file: {exc}"})
        mime, ext = _TYPE_BY_FORMAT[facts.format]
        if mime != content_type:
            return Respond(400, {"error": f"The uploaded file is {mime}, not {content_type}"})
        with self._state_lock:
            self._assets[facts.sha256] = (facts, request.body)
            self._uploads.append(facts.sha256)
        body: dict[str, Any] = {"status": 3, "url": self.asset_url(facts.sha256, facts.format), "message": ""}
        if not self.omit_file_name:
            body["fileName"] = f"{facts.sha256[:15]}.{ext}"
        return Respond(200, body, billed=True)

    def _account(self, request: Incoming) -> Respond:
        email = unquote(request.path[len(ACCOUNTS_PREFIX) :])
        if email not in self.accounts:
            return Respond(404, f"Account configuration not found for email {email}")
        return Respond(200, {"email": email, "maxJobs": 1})

    def _recognize_faces(self, request: Incoming) -> Respond:
        if not isinstance(request.json, dict):
            return Respond(400, {"error": "Request body must be a JSON object"})
        if self.reference_checked_first and not request.json.get("imageReference"):
            return Respond(400, {"error": "Parameter imageReference is required"})
        refusal = self._account_missing(request.json.get("email"))
        if refusal is not None:
            return refusal
        reference = request.json.get("imageReference")
        if not isinstance(reference, str) or not reference:
            return Respond(400, {"error": "Parameter imageReference is required"})
        asset = self._asset_at(reference)
        if asset is None:
            return Respond(400, {"error": f"Unable to load imageReference {reference}"})
        facts, _ = asset
        with self._state_lock:
            boxes = self._faces.get(facts.sha256, ())
        body: dict[str, Any] = {"status": 0, "message": ""}
        if boxes or self.no_faces_shape == "empty":
            body["faceItems"] = [self._face_item(facts.sha256, index, box) for index, box in enumerate(boxes)]
        body["mediaInfo"] = {"type": "image", "duration": 0, "width": facts.width, "height": facts.height}
        return Respond(200, body, billed=True)

    def _face_item(self, sha256: str, index: int, box: tuple[int, int, int, int]) -> dict[str, Any]:
        x, y, width, height = box
        base = f"{self.base_url}{ASSET_PREFIX}{sha256}"
        return {
            "name": f"face_{index}",
            "resources": [
                {"name": "face", "type": "image", "url": f"{base}/face_{index}.jpg", "marginTop": 0, "countInRow": 1},
                {
                    "name": "face_feature",
                    "type": "image",
                    "url": f"{base}/face_feature_{index}.jpg",
                    "marginTop": 0,
                    "countInRow": 1,
                },
            ],
            "arguments": [
                {
                    "name": "face_bound",
                    "value": json.dumps({"x": x, "y": y, "width": width, "height": height}, separators=(",", ":")),
                }
            ],
        }

    def _asset_at(self, url: str) -> tuple[ImageFacts, bytes] | None:
        prefix = f"{self.base_url}{ASSET_PREFIX}"
        if not url.startswith(prefix):
            return None
        sha256, _, ext = url[len(prefix) :].partition(".")
        with self._state_lock:
            asset = self._assets.get(sha256)
        if asset is None or _TYPE_BY_FORMAT[asset[0].format][1] != ext:
            return None
        return asset

    def _serve_asset(self, path: str) -> Respond:
        asset = self._asset_at(f"{self.base_url}{path}")
        if asset is None:
            return NOT_FOUND_TEXT
        facts, data = asset
        return Respond(200, data, {"Content-Type": _TYPE_BY_FORMAT[facts.format][0]})
