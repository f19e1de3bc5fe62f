"""The progress line shows the calls in flight the provider's account settled at."""

from core.console import progress_line
from core.events import Progress


def test_the_progress_line_says_how_many_calls_run_at_once():
    progress = Progress(done=120, failed=3, total=500, elapsed=10.0, per_second=12.3, concurrency=3)
    assert progress_line(progress, width=120).endswith("12.3/s  ETA 0:31  3 at once")


def test_without_a_known_pace_the_line_says_nothing_about_it():
    progress = Progress(done=1, failed=0, total=2, elapsed=1.0, per_second=1.0)
    assert "at once" not in progress_line(progress)
