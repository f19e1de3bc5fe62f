"""Guards against a known-bad Qt binding: PySide6 6.12.0 dropped a reference to ``True``
on every signal emit, which aborts the app ("bool_dealloc") after a few hundred results.
pyproject.toml excludes that release; this fails if such a build comes back."""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QObject, Signal  # noqa: E402


class Emitter(QObject):
    ping = Signal(int)


def test_emitting_signals_leaves_the_refcount_of_true_alone(qapp):
    emitter = Emitter()
    received = []
    emitter.ping.connect(received.append)
    before = sys.getrefcount(True)
    for i in range(200):
        emitter.ping.emit(i)
    assert len(received) == 200
    assert sys.getrefcount(True) >= before - 5  # a few may move elsewhere, never one per emit
