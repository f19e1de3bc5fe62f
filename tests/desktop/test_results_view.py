import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


import pytest  # noqa: E402
from keyring.backends import null  # noqa: E402
from PySide6.QtCore import QObject, QSettings, Qt, Slot  # noqa: E402
from PySide6.QtGui import QDesktopServices, QGuiApplication  # noqa: E402

from core.models import CheckResult, Outcome, ProbedImage, Status  # noqa: E402
from core.store import RowFilter, Store  # noqa: E402
from desktop.results_model import COLUMN_INDEX  # noqa: E402
from desktop.results_view import EMPTY_DATABASE, EMPTY_FILTER, ResultsPanel, row_filter_for  # noqa: E402
from tests.conftest import make_context  # noqa: E402
from tests.desktop.results_data import ROWS, build_results_db, records, spec  # noqa: E402

# What each quick filter must keep, decided from the records the database was built from.
QUICK_EXPECTATIONS = {
    "all": lambda s: True,
    "passed": lambda s: s.status == "checked",
    "invalid": lambda s: s.status == "invalid",
    "errors": lambda s: s.status in ("failed", "rejected"),
    "face": lambda s: s.has_face,
    "no_face": lambda s: s.has_no_face,
    "avatar": lambda s: s.avatar,
    "tryon": lambda s: s.tryon,
    "review": lambda s: s.review,
}


@pytest.fixture
def context(tmp_path):
    return make_context(tmp_path / "home", null.Keyring())


@pytest.fixture
def make_panel(qtbot, context):
    made = []

    def make():
        panel = ResultsPanel(context)
        qtbot.addWidget(panel)
        panel.resize(1400, 800)
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.shutdown()
        # No thread left behind: both pools are idle.
        assert panel.thumbnails.wait(0) and panel.detail.wait(0)


@pytest.fixture
def panel(make_panel, results_db):
    made = make_panel()
    made.set_database(results_db[0])
    return made


def paths_shown(panel):
    return {panel.model.row_at(n)["path"] for n in range(panel.model.rowCount())}


def select_rows(panel, *rows):
    from PySide6.QtCore import QItemSelection, QItemSelectionModel

    selection = QItemSelection()
    last = panel.model.columnCount() - 1
    for row in rows:
        selection.select(panel.model.index(row, 0), panel.model.index(row, last))
    panel.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
    panel.table.selectionModel().setCurrentIndex(panel.model.index(rows[0], 1), QItemSelectionModel.SelectionFlag.NoUpdate)


class UrlCatcher(QObject):
    """Receives the file:// URLs QDesktopServices would have opened."""

    def __init__(self):
        super().__init__()
        self.urls = []

    @Slot("QUrl")
    def open(self, url):
        self.urls.append(url.toLocalFile())


@pytest.fixture
def opened_urls():
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    yield catcher.urls
    QDesktopServices.unsetUrlHandler("file")


# --- empty states ----------------------------------------------------------------------------


def test_no_database_yet_shows_what_to_do_then_rows_once_it_exists(make_panel, tmp_path):
    panel = make_panel()
    path = tmp_path / "later.db"
    panel.set_database(path)
    panel.show()
    assert panel.empty.isVisible() and panel.empty.text() == " ".join(EMPTY_DATABASE)
    assert not panel.empty.button.isVisible()
    assert not panel.detail.isVisible() and not panel.filter_bar.export.isEnabled()
    assert not path.exists()  # looking does not create it
    build_results_db(path, n=30)
    panel.note_outcomes(["x"])  # the runner made it: the next refresh opens it
    panel.refresh()
    assert panel.model.rowCount() == 30
    assert panel.table.isVisible() and not panel.empty.isVisible()
    assert panel.detail.isVisible() and panel.filter_bar.export.isEnabled()
    assert panel.filter_bar.count.text() == "30 results"


def test_a_filter_that_matches_nothing_offers_show_all(panel, qtbot):
    panel.show()
    panel.filter_bar.search.setText("no such photo anywhere")
    qtbot.waitUntil(lambda: panel.model.rowCount() == 0)
    assert panel.empty.isVisible() and panel.empty.text() == " ".join(EMPTY_FILTER)
    qtbot.mouseClick(panel.empty.button, Qt.MouseButton.LeftButton)
    assert panel.model.rowCount() == ROWS
    assert panel.filter_bar.search.text() == "" and panel.filter_bar.quick() == "all"


def test_a_file_that_is_not_a_results_database_says_why(make_panel, tmp_path, qtbot):
    bogus = tmp_path / "notes.db"
    bogus.write_text("just text\n" * 200)
    panel = make_panel()
    panel.show()
    with qtbot.waitSignal(panel.error) as error:
        panel.set_database(bogus)
    assert "not a SQLite database" in error.args[0]
    assert panel.empty.isVisible() and "not a SQLite database" in panel.empty.text()


# --- filtering -----------------------------------------------------------------------------


@pytest.mark.parametrize("quick", list(QUICK_EXPECTATIONS))
def test_quick_filter_buttons_keep_exactly_the_matching_rows(panel, results_db, quick):
    specs = results_db[1]
    panel.filter_bar.quick_actions[quick].trigger()
    assert panel.current_filter() == row_filter_for(quick)
    assert paths_shown(panel) == {s.path for s in specs if QUICK_EXPECTATIONS[quick](s)}
    assert panel.model.rowCount() > 0


def test_quick_filters_map_to_store_filters():
    assert row_filter_for("passed") == RowFilter(statuses=("checked",))
    assert row_filter_for("errors", " IMG ", "local") == RowFilter(provider="local", statuses=("failed", "rejected"), text="IMG")
    assert row_filter_for("no_face") == RowFilter(has_face=False)
    assert row_filter_for("tryon") == RowFilter(verdict="tryon")
    with pytest.raises(KeyError):
        row_filter_for("bogus")


def test_search_waits_for_a_pause_in_typing(panel, results_db, qtbot):
    panel.filter_bar.search.setText("IMG_01")
    assert panel.model.row_filter().text is None  # not yet: the debounce timer runs
    qtbot.waitUntil(lambda: panel.model.row_filter().text == "IMG_01")
    assert paths_shown(panel) == {s.path for s in results_db[1] if "img_01" in s.path}
    assert panel.current_filter().text == "IMG_01"


def test_provider_picker_appears_with_several_providers(make_panel, tmp_path, context):
    path = tmp_path / "two.db"
    specs = build_results_db(path, n=20)
    checked = [s for s in specs if s.status == "checked"][:4]
    with Store(path) as writer:
        writer.save_outcomes(
            [Outcome(s.sha, "cometapi", s.path, Status.CHECKED, result=CheckResult(head_seg=True)) for s in checked]
        )
    panel = make_panel()
    panel.set_database(path)
    picker = panel.filter_bar.provider
    assert not picker.isHidden()
    assert [picker.itemData(i) for i in range(picker.count())] == [None, "cometapi", "local"]
    assert picker.itemText(1) == context.registry.providers["cometapi"].label
    assert not panel.table.isColumnHidden(COLUMN_INDEX["provider"])
    assert panel.model.rowCount() == 24  # a row per file and provider result
    picker.setCurrentIndex(1)
    assert panel.current_filter().provider == "cometapi"
    assert panel.model.rowCount() == 20  # every file, pending where cometapi has no result


def test_one_provider_hides_the_picker_and_column(panel):
    assert panel.filter_bar.provider.isHidden()
    assert panel.table.isColumnHidden(COLUMN_INDEX["provider"])


# --- selection, menu and signals -------------------------------------------------------------


def test_selection_is_announced_and_shown_in_the_detail_pane(panel, qtbot):
    with qtbot.waitSignal(panel.selection_changed) as changed:
        select_rows(panel, 5)
    assert changed.args[0] == panel.model.row_at(5)
    assert panel.detail.row() == panel.model.row_at(5)
    assert panel.selected_rows() == [panel.model.row_at(5)]
    with qtbot.waitSignal(panel.selection_changed) as cleared:
        panel.table.clearSelection()
    assert cleared.args[0] is None
    assert panel.detail.row() is None


def test_context_menu_actions_emit_and_do_what_they_say(panel, qtbot, opened_urls):
    select_rows(panel, 0, 2)
    rows = [panel.model.row_at(0), panel.model.row_at(2)]
    paths = [r["path"] for r in rows]
    menu = panel.context_menu()
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert texts == ["Open", "Show in Folder", "Copy Paths", "Check 2 Again", "Export 2 Rows…"]
    assert all(a.isEnabled() for a in menu.actions())

    with qtbot.waitSignal(panel.check_again_requested) as again:
        panel.action_check_again.trigger()
    assert again.args[0] == paths
    with qtbot.waitSignal(panel.export_requested) as export:
        panel.action_export_selection.trigger()
    assert export.args[0] == rows
    panel.action_copy_paths.trigger()
    assert QGuiApplication.clipboard().text() == "\n".join(paths)
    panel.action_open.trigger()
    assert opened_urls == paths
    opened_urls.clear()
    panel.action_show_in_folder.trigger()
    assert opened_urls == sorted({r["folder"] for r in rows})


def test_context_menu_is_disabled_without_a_selection(panel):
    panel.table.clearSelection()
    menu = panel.context_menu()
    assert not any(a.isEnabled() for a in menu.actions() if not a.isSeparator())


def test_right_click_on_an_unselected_row_selects_it(panel, qtbot):
    panel.show()
    qtbot.waitExposed(panel)
    select_rows(panel, 0)
    position = panel.table.visualRect(panel.model.index(3, COLUMN_INDEX["file"])).center()
    panel.table.customContextMenuRequested.emit(position)
    assert [r["path"] for r in panel.selected_rows()] == [panel.model.row_at(3)["path"]]
    for menu in panel.findChildren(type(panel.context_menu())):
        menu.close()


def test_export_button_asks_for_the_current_filter(panel, qtbot):
    panel.filter_bar.quick_actions["invalid"].trigger()
    with qtbot.waitSignal(panel.export_requested) as export:
        panel.filter_bar.export.click()
    assert export.args[0] == RowFilter(statuses=("invalid",))


# --- live updates ------------------------------------------------------------------------------


def test_a_stream_of_outcomes_is_batched_into_one_refresh(panel, results_db, qtbot):
    new = [spec(i) for i in range(ROWS, ROWS + 5)]
    with Store(results_db[0]) as writer:
        writer.save_probes(records(new)[0])
    inserts = []
    panel.model.rowsInserted.connect(lambda *args: inserts.append(args))
    for sha in (s.sha for s in new * 40):  # 200 notes before the event loop runs once
        panel.note_outcomes([sha])
    qtbot.waitUntil(lambda: panel.model.rowCount() == ROWS + 5, timeout=5_000)
    assert len(inserts) == 1


def test_refresh_keeps_the_selected_photo_selected_when_rows_move(panel, results_db, qtbot):
    select_rows(panel, 3)
    chosen = panel.model.row_at(3)["path"]
    assert chosen.startswith("/photos/f0/img_")
    with Store(results_db[0]) as writer:  # two files that sort before it
        writer.save_probes([ProbedImage(f"/photos/f0/aaa_{n}.jpg", 100, 1, f"{n:x}" * 64, "JPEG", 400, 400) for n in (10, 11)])
    panel.refresh()
    assert panel.model.row_at(5)["path"] == chosen
    assert [r["path"] for r in panel.selected_rows()] == [chosen]
    assert panel.detail.row()["path"] == chosen


def test_refresh_updates_the_detail_pane_when_the_selected_row_changes(panel, results_db, qtbot):
    pending = next(n for n in range(ROWS) if panel.model.row_at(n)["status"] == "pending")
    select_rows(panel, pending)
    row = panel.model.row_at(pending)
    with Store(results_db[0]) as writer:
        writer.save_outcomes([Outcome(row["sha256"], "local", row["path"], Status.FAILED, error="Gone.", attempts=1)])
    with qtbot.waitSignal(panel.selection_changed) as changed:
        panel.refresh()
    assert changed.args[0]["path"] == row["path"] and changed.args[0]["status"] == "failed"
    assert panel.detail.error.text() == "Gone."


# --- state ---------------------------------------------------------------------------------------


def test_state_round_trips_through_qsettings(make_panel, results_db, tmp_path, qtbot):
    settings = QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat)
    first = make_panel()
    first.set_database(results_db[0])
    first.table.horizontalHeader().resizeSection(COLUMN_INDEX["file"], 333)
    first.table.sortByColumn(COLUMN_INDEX["size"], Qt.SortOrder.DescendingOrder)
    first.filter_bar.quick_actions["passed"].trigger()
    first.filter_bar.search.setText("img_0")
    first.filter_bar.flush()
    first.splitter.setSizes([700, 500])
    sizes = first.splitter.sizes()
    first.save_state(settings)
    settings.sync()

    second = make_panel()
    second.set_database(results_db[0])
    second.restore_state(QSettings(str(tmp_path / "state.ini"), QSettings.Format.IniFormat))
    assert second.table.horizontalHeader().sectionSize(COLUMN_INDEX["file"]) == 333
    assert second.model.sort_order() == (COLUMN_INDEX["size"], Qt.SortOrder.DescendingOrder)
    assert second.current_filter() == RowFilter(statuses=("checked",), text="img_0")
    assert second.model.row_filter() == second.current_filter()
    assert second.splitter.sizes() == sizes
    values = [second.model.row_at(n)["bytes"] for n in range(second.model.rowCount())]
    assert values == sorted(values, reverse=True)
