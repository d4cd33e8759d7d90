"""Keyboard habits artists bring from other tools: [ and ] for the brush size, Ctrl+Enter to generate
(also while typing the prompt)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest


def test_brackets_shrink_and_grow_the_brush_within_its_range(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)  # window shortcuts need the active window
    view = window.canvas
    view.setFocus()
    start = view.brush_size
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert view.brush_size > start and window.size_slider.value() == int(view.brush_size)
    for _ in range(40):
        QTest.keyClick(window, Qt.Key.Key_BracketLeft)
    assert view.brush_size == 1.0, "never below one pixel"
    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert view.brush_size == 2.0, "a one-pixel brush still grows"
    for _ in range(40):
        QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert view.brush_size == window.size_slider.maximum()


def test_ctrl_enter_in_the_prompt_box_generates_and_adds_no_newline(qtbot):
    from brushwork_canvas.app import build
    from brushwork_canvas.backend import ClientBackend

    # A worker address where nothing listens: the job is sent and fails in one line (an address
    # given explicitly is never auto-started, so no worker process is left behind by this test).
    win = build(backend=ClientBackend("http://127.0.0.1:9", token="x" * 40), width=64, height=64, restore=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)  # window shortcuts need the active window
    messages = []
    win.session.message.connect(messages.append)
    prompt = win.generate_panel.prompt
    prompt.setFocus()
    QTest.keyClicks(prompt, "red brick wall")
    QTest.keyClick(prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert [spec.action for spec in win.session.submitted] == ["generate"]
    assert win.doc.settings.prompt == "red brick wall", "the shortcut is not typed into the prompt"
    qtbot.waitUntil(lambda: not win.session.busy, timeout=30000)
    assert any(m.startswith("Generate failed: no worker answers") for m in messages), messages
    assert win.session.runner.shutdown(10000)
