"""The detail pane: everything known about the selected image.

A large upright preview with the face boxes, the face crops, problems in sentences, the four
flags, the three verdicts, what the check cost and the provider's raw answer. The preview and
the crops are decoded on a private thread pool; a newer selection makes older loads moot.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from PIL import ExifTags, Image, ImageOps
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QBoxLayout,
    QFormLayout,
    QFrame,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.probe import DECODE_ERRORS
from core.scan import file_path
from core.words import VERDICT_LABELS

from .icons import icon
from .face_overlay import FaceMark, FacePreview, displayed_box, normal_orientation, upright_size
from .results_model import (
    FLAG_LABELS,
    STATUS_HELP,
    STATUS_LABELS,
    flag_colour,
    flag_glyph,
    format_bytes,
    format_dimensions,
    problem_sentences,
    status_colour,
)
from .thumbnails import render_thumbnail, to_qimage

log = logging.getLogger(__name__)

#: Longest side of the decoded preview; the widget scales it to fit.
PREVIEW_SIDE = 1600
CROP_SIDE = 88
CROPS_PER_ROW = 4
#: Narrower than this, the flags and the verdicts are shown one under the other.
SIDE_BY_SIDE_WIDTH = 440
EMPTY_MESSAGE = "Select a photo to see its details"

_FLAG_STATES = {True: "found", False: "not found", None: "cannot be told"}
# Why a row has no face list, by status.
_NO_FACES = {
    "checked": "This provider does not locate faces.",
    "invalid": "Invalid files are not sent, so no faces were looked for.",
    "pending": "Not checked yet.",
    "failed": "The check did not finish, so no faces were looked for.",
    "rejected": "The provider refused the photo, so no faces were looked for.",
}
_VERDICT_STATES = {"yes": "ready", "no": "not ready", "unknown": "cannot be told yet", "review": "needs review"}


@dataclass(frozen=True)
class LoadedPreview:
    """What a background load produced for one selection."""

    token: int
    image: QImage | None  # upright, at most PREVIEW_SIDE
    stored_size: tuple[int, int]  # the file's pixels as stored
    orientation: int  # its EXIF orientation (1 when none)
    error: str = ""  # why there is no image
    crops: tuple[QImage | None, ...] = field(default=())  # one per local crop path asked for


def load_preview(path: str, crop_paths: tuple[str, ...], token: int = 0) -> LoadedPreview:
    """Decode ``path`` upright and reduced, and the face crops. Safe on any thread; never
    raises for a file that is missing or does not decode.

    :param path: the image file.
    :param crop_paths: local crop files to load as small thumbnails.
    :param token: handed back unchanged, to match the answer to its request.
    """
    crops = tuple(_load_crop(p) for p in crop_paths)
    try:
        with Image.open(file_path(path)) as image:
            stored_size = image.size
            orientation = normal_orientation(image.getexif().get(ExifTags.Base.Orientation, 1))
            image.draft("RGB", (PREVIEW_SIDE, PREVIEW_SIDE))
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
            rgba = upright.convert("RGBA")
    except FileNotFoundError:
        return LoadedPreview(token, None, (0, 0), 1, f"The file is not there any more: {path}", crops)
    except DECODE_ERRORS as exc:
        return LoadedPreview(token, None, (0, 0), 1, f"This image cannot be shown: {exc}", crops)
    return LoadedPreview(token, to_qimage(rgba), stored_size, orientation, "", crops)


def _load_crop(path: str) -> QImage | None:
    try:
        return to_qimage(render_thumbnail(path, CROP_SIDE * 2).convert("RGBA"))
    except DECODE_ERRORS:
        return None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def pretty_raw(raw: str | None) -> str:
    """The provider's answer indented for reading; verbatim when it is not JSON."""
    if not raw:
        return ""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw


class _Relay(QObject):
    loaded = Signal(object)  # LoadedPreview


class _PreviewJob(QRunnable):
    def __init__(self, relay: _Relay, path: str, crop_paths: tuple[str, ...], token: int) -> None:
        super().__init__()
        self._relay, self._path, self._crop_paths, self._token = relay, path, crop_paths, token

    def run(self) -> None:
        try:
            result = load_preview(self._path, self._crop_paths, self._token)
        except Exception as exc:  # a bug costs this preview, never the pool thread
            log.exception("Loading the preview of %s failed", self._path)
            result = LoadedPreview(self._token, None, (0, 0), 1, f"This image cannot be shown: {exc}")
        self._relay.loaded.emit(result)


class ElidedLabel(QLabel):
    """One line of text that shortens itself with … in the middle instead of widening the
    pane; the whole text is in the tooltip and is what gets copied."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setTextFormat(Qt.TextFormat.PlainText)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._full = text
        self.setToolTip(text)
        self._elide()

    def text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(self.width(), 1))
        super().setText(shown)


class _Collapsible(QWidget):
    """A heading that opens and closes the widget under it."""

    def __init__(self, title: str, body: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle = QToolButton(self)
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setAutoRaise(True)
        self.body = body
        body.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle)
        layout.addWidget(body)
        self.toggle.toggled.connect(self._set_open)

    def _set_open(self, open_: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)
        self.body.setVisible(open_)


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setContentsMargins(0, 8, 0, 0)
    return label


def _value_label() -> QLabel:
    label = QLabel()
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


class DetailPane(QWidget):
    """Shows one result row (a dict of :data:`core.store.ROW_COLUMNS`), or an empty state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._row: Mapping[str, Any] | None = None
        self._token = 0
        # Created before the relay: the pool's destructor waits for jobs that use it.
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)

        self._stack = QStackedWidget(self)
        self.empty_label = QLabel(EMPTY_MESSAGE)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        _dim(self.empty_label)
        self._stack.addWidget(self.empty_label)
        self.scroll = self._build_content()
        self._stack.addWidget(self.scroll)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._stack)
        self.setMinimumWidth(280)
        self.show_row(None)

    # --- public ---------------------------------------------------------------------------

    def show_row(self, row: Mapping[str, Any] | None) -> None:
        """Show ``row``, or the empty state for None. The preview arrives later.

        The same image again (a refresh during a run) keeps its preview: only the text is
        redone, and the boxes when the faces changed.
        """
        previous, self._row = self._row, row
        if row is None:
            self._token += 1
            self._stack.setCurrentIndex(0)
            self.preview.set_message("")
            return
        self._stack.setCurrentIndex(1)
        self._fill_text(row)
        same_image = previous is not None and _image_key(previous) == _image_key(row)
        if same_image and previous.get("faces") == row.get("faces"):
            return
        self._token += 1
        if not same_image:
            self.scroll.verticalScrollBar().setValue(0)  # a new photo is read from its top
        if not (same_image and self.preview.has_image()):
            self.preview.set_message("Loading the preview…")
        local_crops = tuple(c for face in row.get("faces") or () for c in face.get("crops", ()) if not is_url(c))
        self._show_crops(row, [None] * len(local_crops))
        self._pool.start(_PreviewJob(self._relay, row["path"], local_crops, self._token))

    def row(self) -> Mapping[str, Any] | None:
        return self._row

    def show_answers(self, rows: list[Mapping[str, Any]]) -> None:
        """Show each provider's answer for the shown image side by side (rows of
        :data:`core.store.ROW_COLUMNS`, one per provider); hidden with fewer than two."""
        answers = {r["provider"]: r for r in rows if r.get("status") == "checked"}
        visible = len(answers) > 1
        self.answers_heading.setVisible(visible)
        self.answers.setVisible(visible)
        if not visible:
            self.answers.setText("")
            return
        self.answers.setText(answers_table(list(answers.values())))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        wide = self.width() >= SIDE_BY_SIDE_WIDTH
        direction = QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        if self._checks_layout.direction() != direction:
            self._checks_layout.setDirection(direction)

    def wait(self, msecs: int = -1) -> bool:
        """Block until no preview is being loaded (shutdown and tests)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        self._token += 1
        self._pool.clear()
        self._pool.waitForDone()

    # --- building -------------------------------------------------------------------------

    def _build_content(self) -> QWidget:
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.setSpacing(4)

        self.title = ElidedLabel()
        title_font = QFont(self.title.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.25)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.folder = ElidedLabel()
        _dim(self.folder)
        layout.addWidget(self.title)
        layout.addWidget(self.folder)

        self.preview = FacePreview()
        layout.addWidget(self.preview)

        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setWordWrap(True)
        layout.addWidget(_heading("Status"))
        layout.addWidget(self.status)

        self.problems = _value_label()
        layout.addWidget(_heading("Problems"))
        layout.addWidget(self.problems)

        # Why a verdict is "review": the quality warnings, one sentence each.
        self.warnings_heading = _heading("Why a person should look")
        self.warnings = _value_label()
        layout.addWidget(self.warnings_heading)
        layout.addWidget(self.warnings)

        self.faces_heading = _heading("Faces")
        self.crops = QWidget()
        self.crops_layout = QVBoxLayout(self.crops)
        self.crops_layout.setContentsMargins(0, 0, 0, 0)
        self.crops_layout.setSpacing(6)
        layout.addWidget(self.faces_heading)
        layout.addWidget(self.crops)


        checks = QWidget()
        # Side by side when the pane is wide enough, one under the other when not.
        self._checks_layout = grid = QBoxLayout(QBoxLayout.Direction.LeftToRight, checks)
        grid.setContentsMargins(0, 0, 0, 0)
        self.flag_labels: dict[str, QLabel] = {}
        flags_form = QFormLayout()
        for name, label in FLAG_LABELS.items():
            value = QLabel()
            self.flag_labels[name] = value
            flags_form.addRow(label, value)
        self.verdict_labels: dict[str, QLabel] = {}
        verdicts_form = QFormLayout()
        for workflow, label in VERDICT_LABELS.items():
            value = QLabel()
            self.verdict_labels[workflow] = value
            verdicts_form.addRow(label.capitalize(), value)
        flags_box = QVBoxLayout()
        flags_box.addWidget(_heading("Found in the photo"))
        flags_box.addLayout(flags_form)
        verdicts_box = QVBoxLayout()
        verdicts_box.addWidget(_heading("Ready for"))
        verdicts_box.addLayout(verdicts_form)
        grid.addLayout(flags_box)
        grid.addSpacing(16)
        grid.addLayout(verdicts_box)
        grid.addStretch(1)
        layout.addWidget(checks)

        # Every provider's answer for this image side by side, when there is more than one.
        self.answers_heading = _heading("Answers from each provider")
        self.answers = QLabel()
        self.answers.setTextFormat(Qt.TextFormat.RichText)
        self.answers.setWordWrap(True)
        layout.addWidget(self.answers_heading)
        layout.addWidget(self.answers)
        self.show_answers([])

        self.error = _value_label()
        self.error_heading = _heading("Error")
        layout.addWidget(self.error_heading)
        layout.addWidget(self.error)

        self.facts: dict[str, QLabel | QLineEdit] = {}
        facts_form = QFormLayout()
        facts_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key, label in (
            ("provider", "Provider"),
            ("dimensions", "Dimensions"),
            ("size", "Size"),
            ("format", "Format"),
            ("cost", "Cost"),
            ("request_id", "Request id"),
            ("attempts", "Attempts"),
            ("checked_at", "Checked"),
            ("sha256", "SHA-256"),
        ):
            value = _copyable(key == "sha256") if key in ("request_id", "sha256") else _value_label()
            self.facts[key] = value
            facts_form.addRow(label, value)
        layout.addWidget(_heading("Details"))
        layout.addLayout(facts_form)

        self.raw = QPlainTextEdit()
        self.raw.setReadOnly(True)
        self.raw.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.raw.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.raw.setMinimumHeight(180)
        self.raw_section = _Collapsible("Provider's answer", self.raw)
        layout.addWidget(self.raw_section)
        layout.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        return scroll

    # --- filling ----------------------------------------------------------------------------

    def _fill_text(self, row: Mapping[str, Any]) -> None:
        self.title.setText(row.get("file") or row["path"])
        self.folder.setText(row.get("folder") or "")

        status = row["status"]
        colour = status_colour(status, self.palette()).name()
        self.status.setText(
            f'<span style="color:{colour}">●</span> <b>{STATUS_LABELS.get(status, status)}</b>'
            f" — {html.escape(STATUS_HELP.get(status, ''), quote=False)}"
        )

        sentences = problem_sentences(row)
        if row.get("ready_copy"):  # made by Make ready copies, and a check of it passed
            sentences = [*sentences, f"A ready copy passed its check: {row['ready_copy']}"]
        self.problems.setText("\n".join(f"• {s}" for s in sentences) if sentences else "None.")
        warnings = [w["message"] for w in row.get("warnings") or ()]
        self.warnings.setText("\n".join(f"• {s}" for s in warnings))
        self.warnings.setVisible(bool(warnings))
        self.warnings_heading.setVisible(bool(warnings))

        for name, label in self.flag_labels.items():
            value = row.get(name)
            if status == "checked":
                label.setText(f"{flag_glyph(value)} {_FLAG_STATES.get(value, 'cannot be told')}")
            else:
                label.setText("— not checked")
            label.setStyleSheet(f"color: {flag_colour(value, self.palette()).name()};")
        for workflow, label in self.verdict_labels.items():
            value = row.get(f"verdict_{workflow}") or "unknown"
            label.setText(f"{flag_glyph(value)} {_VERDICT_STATES.get(value, value)}")
            label.setStyleSheet(f"color: {flag_colour(value, self.palette()).name()};")

        error = row.get("error")
        if error and row.get("error_code"):
            error = f"{error} ({row['error_code']})"
        self.error.setText(error or "")
        self.error.setVisible(bool(error))
        self.error_heading.setVisible(bool(error))

        attempts = row.get("attempts")
        duration = row.get("duration_ms")
        attempts_text = ""
        if attempts:
            attempts_text = f"{attempts} call{'s' if attempts != 1 else ''}"
            if duration is not None:
                attempts_text += f" in {_seconds(duration)}"
        facts = {
            "provider": row.get("provider") or "",
            "dimensions": format_dimensions(row.get("width"), row.get("height")),
            "size": format_bytes(row.get("bytes")),
            "format": row.get("format") or "",
            "cost": row.get("cost") or "",
            "request_id": row.get("request_id") or "",
            "attempts": attempts_text,
            "checked_at": _local_time(row.get("checked_at")),
            "sha256": row.get("sha256") or "",
        }
        for key, value in facts.items():
            self.facts[key].setText(value or "—")
            if isinstance(self.facts[key], QLineEdit):
                self.facts[key].setCursorPosition(0)
                self.facts[key].setToolTip(value)

        raw = pretty_raw(row.get("raw"))
        self.raw.setPlainText(raw)
        self.raw_section.setVisible(bool(raw))

    def _show_crops(self, row: Mapping[str, Any], images: list[QImage | None]) -> None:
        """One tile per face: its crop when it is a local file, its address when it is a URL."""
        while self.crops_layout.count():
            item = self.crops_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        faces = row.get("faces") or []
        if row.get("face_count") is None:
            self.faces_heading.setText("Faces")
            self.crops_layout.addWidget(_note(_NO_FACES.get(row["status"], _NO_FACES["checked"])))
            return
        if not faces:
            self.faces_heading.setText("Faces")
            self.crops_layout.addWidget(_note("No face found."))
            return
        self.faces_heading.setText(f"Faces ({len(faces)})")
        local = iter(images)
        tiles = QWidget()
        grid = QGridLayout(tiles)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        links: list[QLabel] = []
        for n, face in enumerate(faces, start=1):
            for crop in face.get("crops", ()):
                if is_url(crop):
                    links.append(_link_note(n, crop))
                else:
                    count = grid.count()
                    grid.addWidget(_crop_tile(n, next(local, None), crop), count // CROPS_PER_ROW, count % CROPS_PER_ROW)
        if grid.count():
            grid.setColumnStretch(CROPS_PER_ROW, 1)
            self.crops_layout.addWidget(tiles)
        else:
            tiles.deleteLater()
        for link in links:
            self.crops_layout.addWidget(link)

    @Slot(object)
    def _on_loaded(self, loaded: LoadedPreview) -> None:
        if loaded.token != self._token or self._row is None:
            return  # a newer selection took over
        row = self._row
        if loaded.image is None:
            self.preview.set_message(loaded.error)
        else:
            marks = tuple(
                FaceMark(
                    displayed_box(
                        (face["x"], face["y"], face["width"], face["height"]), loaded.orientation, loaded.stored_size
                    ),
                    _caption(n, face.get("confidence")),
                )
                for n, face in enumerate(row.get("faces") or (), start=1)
            )
            self.preview.set_image(loaded.image, upright_size(loaded.stored_size, loaded.orientation), marks)
        self._show_crops(row, list(loaded.crops))


def answers_table(rows: list[Mapping[str, Any]]) -> str:
    """Rich text: one column per provider; whether it found a face, how many, the verdicts
    and the warnings."""

    def face(row: Mapping[str, Any]) -> str:
        value = row.get("face_seg")
        found = _FLAG_STATES.get(value, "cannot be told")
        return found if row.get("face_count") is None else f"{found} ({row['face_count']})"

    lines = [("Face", face)]
    for workflow, label in VERDICT_LABELS.items():
        lines.append((label.capitalize(), lambda r, w=workflow: _VERDICT_STATES.get(r.get(f"verdict_{w}") or "unknown", "")))
    lines.append(("Warnings", lambda r: ", ".join(w["code"] for w in r.get("warnings") or ()) or "none"))
    cell = '<td style="padding: 1px 8px 1px 0">{}</td>'
    head = "".join(cell.format(f"<b>{html.escape(r['provider'])}</b>") for r in rows)
    body = "".join(
        "<tr>" + cell.format(html.escape(label)) + "".join(cell.format(html.escape(get(r))) for r in rows) + "</tr>"
        for label, get in lines
    )
    return f"<table><tr>{cell.format('')}{head}</tr>{body}</table>"


def _copyable(copy_button: bool = False) -> QLineEdit:
    """A long token (hash, request id) on one line that scrolls and copies whole; with
    ``copy_button``, a button at its end copies it (a hash is too long to select by hand)."""
    field_ = QLineEdit()
    if copy_button:
        copy = field_.addAction(icon("copy"), QLineEdit.ActionPosition.TrailingPosition)
        copy.setToolTip("Copy")
        copy.setObjectName("copy")
        copy.triggered.connect(lambda: QGuiApplication.clipboard().setText(field_.text() if field_.text() != "—" else ""))
    field_.setReadOnly(True)
    field_.setFrame(False)
    field_.setStyleSheet("QLineEdit { background: transparent; }")
    field_.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    field_.setCursorPosition(0)
    return field_


def _image_key(row: Mapping[str, Any]) -> tuple[str, str | None]:
    return row["path"], row.get("sha256")


def _caption(n: int, confidence: float | None) -> str:
    return f"{n}" if confidence is None else f"{n} · {confidence:.0%}"


def _note(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    _dim(label)
    label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    return label


def _link_note(n: int, url: str) -> QLabel:
    """A crop the provider keeps online: its address as text, never fetched."""
    label = ElidedLabel()
    label.setText(f"Face {n}: {url}")
    _dim(label)
    return label


def _crop_tile(n: int, image: QImage | None, path: str) -> QLabel:
    tile = QLabel()
    tile.setFixedSize(CROP_SIDE, CROP_SIDE)
    tile.setAlignment(Qt.AlignmentFlag.AlignCenter)
    tile.setToolTip(f"Face {n}: {path}")
    tile.setFrameShape(QFrame.Shape.StyledPanel)
    if image is not None and not image.isNull():
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(max(1.0, image.width() / (CROP_SIDE - 4), image.height() / (CROP_SIDE - 4)))
        tile.setPixmap(pixmap)
    else:
        tile.setText(f"Face {n}")
    return tile


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 100 else f"{ms} ms"


def _local_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _dim(label: QLabel) -> None:
    """Draw ``label`` in the palette's placeholder colour: secondary text."""
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(palette)
