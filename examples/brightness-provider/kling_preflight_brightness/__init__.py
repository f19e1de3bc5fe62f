"""An example Kling Preflight provider: how bright is each photo?

It imports from ``plugins.api`` only, the app's public surface for plugins. It runs offline
and costs nothing, so it shows the parts every provider has (a ``check`` that makes one
attempt, a setting, the memo, the errors) without a server.
"""

from __future__ import annotations

import io
import json

from PIL import Image, ImageStat

from plugins.api import (
    Cancelled,
    CheckContext,
    CheckResult,
    ImageRejected,
    ProbedImage,
    Provider,
    SettingSpec,
    hookimpl,
    say,
)

#: The memo kind this provider stores its measurement under.
MEMO_KIND = "mean_brightness"


class BrightnessProvider(Provider):
    """Measures each photo's mean brightness; refuses one too dark to judge.

    It cannot see heads, faces, clothing or subjects, so every flag stays None ("cannot
    tell"): the verdicts that need them stay unknown, never guessed.
    """

    id = "brightness"
    label = "Brightness (example plugin)"
    key_env = None  # no key: availability() is "ready"
    remote = False  # nothing leaves the computer: no confirmation before a run
    cost_note = "free, offline"
    retries_are_free = True
    default_concurrency = 2
    settings_spec = (
        SettingSpec("dark_below", "Too dark below", 20.0, float,
                    help="Mean brightness (0-255) under which a photo is refused as too dark to judge."),
    )

    def check(self, image: ProbedImage, data: bytes, ctx: CheckContext) -> CheckResult:
        # Called from several worker threads at once: keep nothing per call on self.
        if ctx.cancel.is_set():
            raise Cancelled()
        known = ctx.memo.get(image.sha256, MEMO_KIND)
        if known is None:
            mean = _mean_brightness(data)
            ctx.memo.put(image.sha256, MEMO_KIND, f"{mean:.1f}")  # kept in the results database
        else:
            mean = float(known)
        if mean < float(self.config.get("dark_below", 20.0)):
            # This image only; the batch goes on. Not retried: the answer would not change.
            raise ImageRejected(f"The photo is too dark to judge (mean brightness {mean:.0f} of 255).")
        return CheckResult(raw=json.dumps({"mean_brightness": round(mean, 1)}))


def _mean_brightness(data: bytes) -> float:
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.draft("L", (256, 256))  # JPEGs decode at a fraction of their size
            small = picture.convert("L")
            small.thumbnail((256, 256))
            return ImageStat.Stat(small).mean[0]
    except (OSError, Image.DecompressionBombError) as exc:  # the bomb error is not an OSError
        raise ImageRejected(say("The photo could not be decoded", str(exc))) from None


@hookimpl
def register_providers(register):
    register(BrightnessProvider)
