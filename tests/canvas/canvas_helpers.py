"""Helpers shared by the canvas tests of regions, references, upscale and model defaults.

``StandInBackend`` takes the worker's place where the worker cannot run the job here (an upscale
needs the engine's upscaler, a model list with defaults needs the worker to send them): it stores
uploads by their real sha256, answers ``models()`` with what it is given, and for an upscale job
returns the init picture enlarged by the factor with Qt's smooth scaling (Lanczos' stand-in), so
the canvas's side — what it sends and what it does with what comes back — is what is tested.
"""

from __future__ import annotations

import numpy as np
from brushwork.assets import content_ref
from brushwork_canvas import imaging
from brushwork_canvas.backend import QUEUED, RESULT, JobUpdate
from brushwork_canvas.tools import Stroke
from PySide6.QtCore import QPointF, Qt


class StandInJob:
    def __init__(self, backend, recipe):
        self.id = f"job{len(backend.jobs)}"
        self.backend, self.recipe = backend, recipe

    def cancel(self):
        pass

    def updates(self):
        yield JobUpdate(QUEUED, position=0)
        r = self.recipe
        if r.upscale is not None and r.init_image:
            init = imaging.image_from_bytes(self.backend.assets[r.init_image], "init")
            w, h = r.upscale.output_size(init.width(), init.height())
            out = init.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        else:
            out = imaging.from_array(np.full((r.height or 64, r.width or 64, 3), 90, np.uint8))
        ran = r.replace(seed=r.seed if r.seed is not None else 7)
        yield JobUpdate(RESULT, images=[imaging.png_bytes(out)], recipe=ran, job=self.id)


class StandInBackend:
    def __init__(self, models=None):
        self.assets: dict[str, bytes] = {}
        self.jobs: list[StandInJob] = []
        self.model_list = models or []

    def upload(self, data):
        ref = content_ref(data)
        self.assets[ref] = data
        return ref

    def submit(self, recipe, *, live=False):
        job = StandInJob(self, recipe)
        self.jobs.append(job)
        return job

    def models(self):
        return list(self.model_list)

    def finished_results(self, since, known):
        return [], since


def paint(doc, layer, points, size=6.0):
    stroke = Stroke(doc, layer.id, size=size)
    stroke.begin(QPointF(*points[0]))
    for p in points[1:]:
        stroke.move(QPointF(*p))
    stroke.end()


def png_file(path, array):
    path.write_bytes(imaging.png_bytes(imaging.from_array(np.asarray(array, np.uint8))))
    return path


def window_with(qtbot, backend, size=64):
    from brushwork_canvas.app import build

    win = build(backend=backend, restore=False, width=size, height=size)
    qtbot.addWidget(win)
    win.resize(1100, 800)
    win.show()
    qtbot.waitExposed(win)
    return win


def region_layer(window, prompt, points, size=10.0):
    """A region layer painted along ``points`` with ``prompt`` typed into its box, as the artist does."""
    from PySide6.QtTest import QTest

    window.add_layer("region")
    layer = window.doc.active
    assert layer.kind == "region"
    paint(window.doc, layer, points, size)
    panel = window.layers_panel
    assert panel.region_box.isVisibleTo(window) and not panel.control_box.isVisibleTo(window)
    QTest.keyClicks(panel.region_prompt, prompt)
    return layer
