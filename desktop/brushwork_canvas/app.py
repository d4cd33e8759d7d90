"""``brushwork-canvas``: start the desktop canvas (it finds or starts the worker in the background)."""

from __future__ import annotations

import argparse
import sys

from brushwork.errors import BrushworkError


def build(url: str | None = None, *, backend=None, restore: bool = True, width: int = 512, height: int = 512):
    """The window and its parts, without running the event loop (tests and screenshots use this)."""
    from .autosave import Autosaver, autosave_path
    from .backend import ClientBackend
    from .docfile import load_document
    from .document import Document
    from .jobs import JobRunner
    from .main_window import MainWindow
    from .session import Session

    doc = Document(width, height)
    notice = ""
    if restore and autosave_path().exists():
        try:
            load_document(autosave_path(), doc)
        except BrushworkError as exc:  # keep the unreadable file for the user; start empty
            broken = autosave_path().with_suffix(".unreadable")
            autosave_path().replace(broken)
            notice = f"The last autosave could not be read ({exc}); it was kept as {broken}"
    if not doc.layers:
        from .commands import AddLayer

        doc.undo_stack.push(AddLayer(doc, doc.new_layer("sketch")))
        doc.undo_stack.clear()
    runner = JobRunner(backend or ClientBackend(url))
    session = Session(doc, runner)
    autosaver = Autosaver(doc)
    window = MainWindow(doc, session, autosaver)
    if notice:
        window.statusBar().showMessage(notice)
    return window


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brushwork-canvas", description="Brushwork's desktop canvas")
    parser.add_argument("--worker", metavar="URL", help="the worker to use (default: find or start the local one)")
    parser.add_argument("--size", default="512x512", help="size of a new document, WxH (multiples of 8)")
    parser.add_argument("document", nargs="?", help="a .bwcanvas document to open")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"brushwork-canvas: error: --size must look like 512x768, got {args.size!r}", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    from .theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Brushwork Canvas")
    apply_dark_theme(app)
    try:
        window = build(args.worker, width=width, height=height, restore=args.document is None)
    except BrushworkError as exc:
        print(f"brushwork-canvas: error: {exc}", file=sys.stderr)
        return 2
    if args.document:
        from pathlib import Path

        window.open_path(Path(args.document))
    # In the background (the window shows at once): the worker's models, and the results that
    # finished while the canvas was closed.
    window.session.start()
    window.show()
    code = app.exec()
    return code


if __name__ == "__main__":
    sys.exit(main())
