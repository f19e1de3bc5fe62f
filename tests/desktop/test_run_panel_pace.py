"""The run panel shows how many calls run at once: the pace the provider's account settled at."""

from __future__ import annotations

from core.events import Progress
from desktop.run_panel import RunPanel


def test_the_run_panel_shows_the_calls_at_once(qtbot, app_context):
    panel = RunPanel(app_context)
    qtbot.addWidget(panel)
    panel._on_progress(Progress(done=40, failed=2, total=100, elapsed=4.0, per_second=10.5, concurrency=3))
    assert panel.stats_label.text().endswith("10.5/s · ETA 0:06 · 3 at once")
    panel._on_progress(Progress(done=41, failed=2, total=100, elapsed=4.1, per_second=10.5))
    assert "at once" not in panel.stats_label.text()
