"""Errors in the canvas stay visible, whole, until the artist dismisses them (issue 19)."""

from __future__ import annotations


def test_an_error_opens_the_messages_panel_and_stays_until_dismissed(window, qtbot):
    long_reason = "the worker said: " + "a long reason that a status bar would cut off " * 6
    window.session.error.emit(f"Generate failed: {long_reason}")
    assert window.messages_dock.isVisible()
    assert long_reason.strip() in window.messages_panel.text()  # the whole text, not cut
    # later one-line status messages ("idle", "done") do not take it away
    window.session.message.emit("Ready")
    qtbot.wait(50)
    assert window.messages_dock.isVisible() and window.messages_panel.errors
    window.messages_panel.dismiss_button.click()
    assert not window.messages_dock.isVisible()
    assert window.messages_panel.errors == [] and window.messages_panel.text() == ""


def test_a_refused_action_is_kept_in_the_panel(window):
    """A real failure path: inpainting with no mask is refused before anything is sent."""
    assert window.session.run("inpaint") is None
    assert window.messages_dock.isVisible()
    assert "Inpaint" in window.messages_panel.text()


def test_window_errors_go_to_the_panel_too(window):
    window._error("Could not export /nowhere/x.png: permission denied")
    assert "permission denied" in window.messages_panel.text()
    assert len(window.messages_panel.errors) == 1
