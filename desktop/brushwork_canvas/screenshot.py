"""Refresh docs/screenshots/canvas.png: the main window on a small scene (run it under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m brushwork_canvas.screenshot docs/screenshots/canvas.png \
        [--tiny-models .cache/tiny-models/<digest>]

With ``--tiny-models`` a real worker is started on those models and two results are generated
into the history (tiny random models make noise, not pictures: the point is the real UI).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path


def _scene(win) -> None:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor

    from .commands import AddLayer, SetLayerProps
    from .document import ControlSettings
    from .tools import Stroke

    doc = win.doc

    def line(layer, points, size=5.0, color=QColor(25, 25, 30)):
        stroke = Stroke(doc, layer.id, size=size, color=color)
        stroke.begin(QPointF(*points[0]))
        for p in points[1:]:
            stroke.move(QPointF(*p))
        stroke.end()

    sketch = doc.layers[0]
    w, h = doc.width, doc.height
    line(sketch, [(0, h * 0.62), (w * 0.3, h * 0.6), (w * 0.55, h * 0.64), (w, h * 0.6)], 4)  # horizon
    line(sketch, [(0, h * 0.6), (w * 0.18, h * 0.3), (w * 0.32, h * 0.45), (w * 0.47, h * 0.22), (w * 0.7, h * 0.58)], 5)
    line(sketch, [(w * 0.8 + 34 * math.cos(a / 20 * 2 * math.pi), h * 0.16 + 34 * math.sin(a / 20 * 2 * math.pi))
                  for a in range(21)], 4)  # sun
    line(sketch, [(w * 0.12, h * 0.95), (w * 0.13, h * 0.7)], 7)  # tree
    for dx in (-1, 1):
        line(sketch, [(w * 0.13, h * 0.78), (w * (0.13 + 0.06 * dx), h * 0.7)], 4)
    doc.undo_stack.push(SetLayerProps(doc, sketch.id, control=ControlSettings(True, "scribble", 0.9, 0.0, 0.85)))

    mask = doc.new_layer("mask")
    doc.undo_stack.push(AddLayer(doc, mask))
    line(mask, [(w * 0.62, h * 0.3), (w * 0.68, h * 0.34), (w * 0.6, h * 0.4)], 42)

    win.add_layer("pose")
    pose = doc.active
    people = [[[x * 0.45 + w * 0.42, y * 0.45 + h * 0.5, c] for x, y, c in person] for person in pose.people]
    doc.layer(pose.id).people = people
    doc.update_settings(prompt="watercolor landscape, a lone hiker on a ridge, morning light, soft colours",
                        negative_prompt="text, watermark", preset="sketch-to-image", steps=25, cfg=7.0,
                        seed=1234, seed_locked=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m brushwork_canvas.screenshot")
    parser.add_argument("out", type=Path)
    parser.add_argument("--tiny-models", type=Path, help="start a real worker on these models and generate")
    parser.add_argument("--size", type=int, default=512, help="document side (generation on a CPU is slow at 512)")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `timeout` still stops our worker

    import os

    home = tempfile.mkdtemp(prefix="brushwork-shot-")
    os.environ["BRUSHWORK_HOME"] = home  # never the user's autosave or history

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from .app import build
    from .theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)
    worker = None
    backend = None
    if args.tiny_models:
        from brushwork.worker.testing import WorkerProcess

        from .backend import ClientBackend

        worker = WorkerProcess(home=Path(home) / "worker", model_dirs=[args.tiny_models]).start()
        backend = ClientBackend(worker.url, token=worker.token)
    try:
        win = build(backend=backend, restore=False, width=args.size, height=args.size)
        win.resize(1440, 900)
        win.show()
        _scene(win)
        if worker is not None:
            from .commands import SetLayerProps
            from .document import ControlSettings

            win.session.load_models()
            win.doc.update_settings(model="tiny-sd15", preset="", steps=2)
            for layer in win.doc.layers:  # the tiny set's ControlNets, not the hub defaults
                if layer.can_control and layer.control.enabled:
                    control = ControlSettings(**{**vars(layer.control), "model": f"controlnet-tiny-{layer.control.kind}"})
                    win.doc.undo_stack.push(SetLayerProps(win.doc, layer.id, control=control))
            for _ in range(2):
                done = []
                win.session.result_added.connect(done.append)
                win.session.run("generate")
                deadline = time.monotonic() + 400
                while not done and win.session.busy and time.monotonic() < deadline:
                    app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
                print(win.statusBar().currentMessage())
                win.doc.update_settings(seed=win.doc.settings.seed + 1)
            win.doc.update_settings(preset="sketch-to-image", steps=25, model="tiny-sd15")
            # the results landed as layers on top: hide them so the sketch shows
            for layer in win.doc.layers:
                if layer.name.startswith("Result"):
                    win.doc.undo_stack.push(SetLayerProps(win.doc, layer.id, visible=False))
            pose = next(layer for layer in win.doc.layers if layer.kind == "pose")
            win.doc.set_active(pose.id)
        for _ in range(20):
            app.processEvents()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not win.grab().save(str(args.out)):
            print(f"could not write {args.out}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
        win.session.runner.shutdown(5000)
        return 0
    finally:
        if worker is not None:
            worker.stop()


if __name__ == "__main__":
    sys.exit(main())
