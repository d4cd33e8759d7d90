"""Refresh docs/screenshots/canvas.png: the main window on a small scene (run it under Xvfb).

A developer tool, not part of the canvas: it starts a test worker (brushwork.worker.testing).

    xvfb-run -a -s "-screen 0 1600x1000x24" python tools/canvas_screenshot.py docs/screenshots/canvas.png \
        --demo --size 256

With ``--demo`` a real worker is started on the bundled demo model (no model configured: the
worker falls back to it) and three seamless textures are generated, the way an artist would: the
first result stays on the canvas with a mask painted over it for the next Inpaint. With
``--regions`` (docs/screenshots/canvas-regions.png) the same worker paints a regions document: two
region layers, each half of the picture with its own prompt, over a base prompt. With
``--tiny-models DIR`` the worker runs the tiny random test models instead (their results are
noise: that mode only shows the sketch/pose/mask UI).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path


def _scene(win) -> None:
    from brushwork_canvas.commands import AddLayer, SetLayerProps
    from brushwork_canvas.document import ControlSettings
    from brushwork_canvas.tools import Stroke
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor

    doc = win.doc

    def line(layer, points, size=5.0, color=None):
        stroke = Stroke(doc, layer.id, size=size, color=color or QColor(25, 25, 30))
        stroke.begin(QPointF(*points[0]))
        for p in points[1:]:
            stroke.move(QPointF(*p))
        stroke.end()

    sketch = doc.layers[0]
    w, h = doc.width, doc.height
    line(sketch, [(0, h * 0.62), (w * 0.3, h * 0.6), (w * 0.55, h * 0.64), (w, h * 0.6)], 4)  # horizon
    ridge = [(0, h * 0.6), (w * 0.18, h * 0.3), (w * 0.32, h * 0.45), (w * 0.47, h * 0.22), (w * 0.7, h * 0.58)]
    line(sketch, ridge, 5)
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


# What the demo model knows (docs/demo.md): patterns and colours. (prompt, seed) per result.
DEMO_TEXTURES = (("red brick wall", 7), ("blue tile floor", 3), ("yellow wood grain", 5))


def _wait_for_result(app, win, timeout: float = 400.0) -> None:
    from PySide6.QtCore import QEventLoop

    done: list = []
    win.session.result_added.connect(done.append)
    deadline = time.monotonic() + timeout
    win.session.run("generate")
    while not done and win.session.busy and time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    print(win.statusBar().currentMessage())


def _demo_scene(app, win) -> None:
    """Three textures from the demo model; the first on the canvas with a mask over a patch of it."""
    from brushwork_canvas.commands import AddLayer, SetLayerProps
    from brushwork_canvas.history_panel import reuse_settings
    from brushwork_canvas.tools import Stroke
    from PySide6.QtCore import QPointF

    doc = win.doc
    win.session.load_models()
    # the demo's own steps, CFG and sampler (the panel shows them as the model's defaults)
    doc.update_settings(model="brushwork-demo", tiling="xy", seed_locked=True, explicit=[])
    for prompt, seed in DEMO_TEXTURES:
        doc.update_settings(prompt=prompt, seed=seed)
        _wait_for_result(app, win)
    results = [layer for layer in doc.layers if layer.name.startswith("Result")]
    for layer in results[1:]:  # the first texture stays in view; the others wait in the history
        doc.undo_stack.push(SetLayerProps(doc, layer.id, visible=False))
    if doc.history:
        reuse_settings(doc, doc.history[-1].id)  # the bricks' settings back in the panel
        win.history_panel.list.setCurrentRow(len(doc.history) - 1)
    mask = doc.new_layer("mask")
    doc.undo_stack.push(AddLayer(doc, mask))
    w, h = doc.width, doc.height
    stroke = Stroke(doc, mask.id, size=w * 0.16)
    stroke.begin(QPointF(w * 0.58, h * 0.36))
    for x, y in ((0.66, 0.42), (0.7, 0.52), (0.64, 0.6)):
        stroke.move(QPointF(w * x, h * y))
    stroke.end()
    doc.set_active(mask.id)


# Two regions in colours the demo model gets right on every seed as whole prompts (docs/demo.md).
DEMO_REGIONS = (("orange brick wall", (0.0, 0.5)), ("blue tile floor", (0.5, 1.0)))
DEMO_REGIONS_BASE = "white marble stone"
DEMO_REGIONS_SEED = 1  # of seeds 1-5, the clearest split into two halves (docs/canvas.md says what each got)


def _regions_scene(app, win) -> None:
    """Two region layers (left and right half), generated on the demo model with its own defaults;
    the result sits under the region layers, which are faded so that it shows through their tint."""
    from brushwork_canvas.commands import MoveLayer, SetLayerProps, SetRegion
    from brushwork_canvas.document import RegionSettings
    from brushwork_canvas.tools import Stroke
    from PySide6.QtCore import QPointF

    doc = win.doc
    win.session.load_models()
    doc.update_settings(model="brushwork-demo", prompt=DEMO_REGIONS_BASE, seed=DEMO_REGIONS_SEED, seed_locked=True,
                        explicit=[])
    w, h = doc.width, doc.height
    regions = []
    for prompt, (left, right) in DEMO_REGIONS:
        win.add_layer("region")
        layer = doc.active
        size = (right - left) * w  # a stroke as wide as the region: the whole half
        stroke = Stroke(doc, layer.id, size=size)
        x = (left + right) / 2 * w
        stroke.begin(QPointF(x, -size))
        stroke.move(QPointF(x, h + size))
        stroke.end()
        doc.undo_stack.push(SetRegion(doc, layer.id, RegionSettings(prompt=prompt)))
        regions.append(layer)
    _wait_for_result(app, win)
    result = doc.layers[-1]
    if result.kind == "image":
        doc.undo_stack.push(MoveLayer(doc, result.id, 1))  # above the sketch, under the regions
    for layer in regions:
        doc.undo_stack.push(SetLayerProps(doc, layer.id, opacity=0.25))
    doc.set_active(regions[-1].id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/canvas_screenshot.py")
    parser.add_argument("out", type=Path)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--demo", action="store_true",
                        help="start a real worker on the bundled demo model and generate")
    source.add_argument("--regions", action="store_true",
                        help="start a real worker on the demo model and generate a two-region document")
    source.add_argument("--tiny-models", type=Path, help="start a real worker on these models and generate")
    parser.add_argument("--size", type=int, default=512, help="document side (generation on a CPU is slow at 512)")
    args = parser.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `timeout` still stops our worker

    import os

    home = tempfile.mkdtemp(prefix="brushwork-shot-")
    os.environ["BRUSHWORK_HOME"] = home  # never the user's autosave or history

    from brushwork_canvas.app import build
    from brushwork_canvas.theme import apply_dark_theme
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)
    worker = None
    backend = None
    if args.tiny_models or args.demo or args.regions:
        from brushwork.worker.testing import WorkerProcess
        from brushwork_canvas.backend import ClientBackend

        model_dirs = [args.tiny_models] if args.tiny_models else []
        worker = WorkerProcess(home=Path(home) / "worker", model_dirs=model_dirs).start()
        backend = ClientBackend(worker.url, token=worker.token)
    try:
        win = build(backend=backend, restore=False, width=args.size, height=args.size)
        win.resize(1440, 900)
        win.show()
        if args.demo:
            _demo_scene(app, win)
        elif args.regions:
            _regions_scene(app, win)
        else:
            _scene(win)
        if args.tiny_models:
            from brushwork_canvas.commands import SetLayerProps
            from brushwork_canvas.document import ControlSettings

            win.session.load_models()
            win.doc.update_settings(model="tiny-sd15", preset="", steps=2)
            for layer in win.doc.layers:  # the tiny set's ControlNets, not the hub defaults
                if layer.can_control and layer.control.enabled:
                    tiny = f"controlnet-tiny-{layer.control.kind}"
                    control = ControlSettings(**{**vars(layer.control), "model": tiny})
                    win.doc.undo_stack.push(SetLayerProps(win.doc, layer.id, control=control))
            for _ in range(2):
                _wait_for_result(app, win)
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
