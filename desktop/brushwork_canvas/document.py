"""The canvas document: a size, a stack of layers, generation settings and a history of results.

No widgets here. ``Document`` is a QObject only for its signals and its ``QUndoStack``; every
change a user can undo goes through a command in ``commands.py``, which calls the ``_``-prefixed
mutators below and lets the document announce the change.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from brushwork.errors import BrushworkError
from brushwork.recipe import (
    CONTROL_KINDS,
    MAX_REFERENCES,
    MAX_SIDE,
    MIN_SIDE,
    REFERENCE_MODES,
    Recipe,
)
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QUndoStack

from . import imaging
from .pose import Person, copy_people, from_openpose, to_openpose

# "region": a mask with its own prompt (Recipe.regions); painted like a mask, never part of the picture.
LAYER_KINDS = ("image", "sketch", "mask", "pose", "depth", "region")
# The sampling fields a model has defaults for (the worker says which); the artist's choice wins.
DEFAULTED_SETTINGS = ("steps", "cfg", "sampler")
UPSCALE_FACTORS = (2, 4)
REFERENCE_MAX_SIDE = 1024  # a reference is seen at 224 px by the image encoder: keep documents small
# Which control a layer offers first; the user can pick any other kind.
DEFAULT_CONTROL = {"image": "canny", "sketch": "scribble", "pose": "pose", "depth": "depth"}


class CanvasError(BrushworkError):
    """Something the canvas cannot do with the document as it is (one human line)."""

    code = "canvas"


@dataclass
class ControlSettings:
    """How a layer serves as a ControlNet input (off until the user enables it)."""

    enabled: bool = False
    kind: str = "scribble"
    strength: float = 1.0
    start: float = 0.0
    end: float = 1.0
    model: str = ""  # a ControlNet name from the worker; empty = the family's default for the kind

    def validate(self) -> None:
        if self.kind not in CONTROL_KINDS or self.kind == "inpaint":
            raise CanvasError(f"control kind must be one of depth, pose, scribble, lineart, canny; got {self.kind!r}")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise CanvasError(f"control step range {self.start:g}..{self.end:g} must satisfy 0 <= start < end <= 1")


@dataclass
class RegionSettings:
    """A region layer's prompt box: what its painted area shows (Recipe.regions)."""

    prompt: str = ""
    negative_prompt: str = ""
    weight: float = 1.0  # how fully the region's prompt replaces the base prompt inside it (0..2)
    start: float = 0.0
    end: float = 1.0

    def validate(self) -> None:
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            raise CanvasError("a region's prompt and negative prompt must be text")
        for name in ("weight", "start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CanvasError(f"region {name} must be a number, got {value!r}")
        if not 0.0 <= self.weight <= 2.0:
            raise CanvasError(f"region weight must be from 0 to 2, got {self.weight:g}")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise CanvasError(f"region step range {self.start:g}..{self.end:g} must satisfy 0 <= start < end <= 1")


@dataclass(eq=False)
class ReferenceSlot:
    """A reference picture in the generate panel (Recipe.references): its pixels, where it came
    from (a file name or a layer's name), its weight and mode."""

    image: QImage
    name: str = "reference"
    weight: float = 0.6
    mode: str = "style"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def validate(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) \
                or not math.isfinite(self.weight) or not 0.0 <= self.weight <= 2.0:
            raise CanvasError(f"reference weight must be a number from 0 to 2, got {self.weight!r}")
        if self.mode not in REFERENCE_MODES:
            raise CanvasError(f"reference mode must be one of {', '.join(REFERENCE_MODES)}; got {self.mode!r}")
        if self.image is None or self.image.isNull():
            raise CanvasError(f"reference {self.name}: no picture")


def reference_image(image: QImage) -> QImage:
    """A picture as a reference slot keeps it: RGB, at most REFERENCE_MAX_SIDE on its long side."""
    from PySide6.QtCore import Qt

    if max(image.width(), image.height()) > REFERENCE_MAX_SIDE:
        image = image.scaled(REFERENCE_MAX_SIDE, REFERENCE_MAX_SIDE, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image.convertToFormat(QImage.Format.Format_RGB888)


@dataclass(eq=False)
class Layer:
    kind: str
    name: str
    image: QImage | None = None  # every kind but pose; ARGB32 premultiplied at document size
    people: list[Person] = field(default_factory=list)  # pose layers only
    visible: bool = True
    opacity: float = 1.0
    control: ControlSettings = field(default_factory=ControlSettings)
    region: RegionSettings = field(default_factory=RegionSettings)  # region layers only
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def can_control(self) -> bool:
        return self.kind in DEFAULT_CONTROL


@dataclass
class GenSettings:
    """What the generate panel shows; turned into a Recipe by ``recipes.build_job``."""

    prompt: str = ""
    negative_prompt: str = ""
    model: str = ""
    preset: str = ""
    sampler: str = "Euler a"
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    seed_locked: bool = False
    strength: float = 0.6  # refine / inpaint / live denoising strength
    tiling: str = ""  # seamless axes: "", "x", "y" or "xy" (textures that repeat without a seam)
    # Which of DEFAULTED_SETTINGS the artist chose (typed, a preset, Reuse settings): the others
    # follow the chosen model's defaults when the worker tells them (issue 19).
    explicit: list[str] = field(default_factory=list)
    upscale_model: str = ""  # a super-resolution model the worker lists; empty = Lanczos
    upscale_factor: int = 2
    upscale_refine: float = 0.0  # 0 = the upscale alone; above 0 a tiled refine at that strength
    reference_model: str = ""  # the IP-Adapter every reference slot uses; empty = the family's default

    @classmethod
    def from_dict(cls, data: dict) -> GenSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(eq=False)
class HistoryEntry:
    """One result: the PNG exactly as the worker wrote it (metadata included) and its Recipe."""

    png: bytes
    recipe: Recipe
    task: str = "txt2img"
    created: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    job: str = ""  # the worker's job id, when known

    @cached_property
    def sha256(self) -> str:
        """Hex digest of the PNG: the worker names results by it, so it tells whether a result is here."""
        return hashlib.sha256(self.png).hexdigest()

    def to_manifest(self) -> dict[str, Any]:
        entry = {"id": self.id, "task": self.task, "created": self.created, "recipe": self.recipe.to_dict()}
        if self.job:
            entry["job"] = self.job
        return entry


def check_opacity(value: Any, where: str = "opacity") -> float:
    """A layer opacity is a number from 0 (transparent) to 1 (opaque)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise CanvasError(f"{where} must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_size(width: int, height: int) -> tuple[int, int]:
    """Document sides are what a Recipe accepts: MIN_SIDE..MAX_SIDE, multiples of 8."""
    for name, side in (("width", width), ("height", height)):
        if not isinstance(side, int) or not MIN_SIDE <= side <= MAX_SIDE or side % 8:
            raise CanvasError(f"document {name} must be a multiple of 8 between {MIN_SIDE} and {MAX_SIDE}, "
                              f"got {side!r}")
    return width, height


class Document(QObject):
    layers_changed = Signal()  # layers added, removed, reordered, renamed, shown/hidden
    pixels_changed = Signal(str)  # a layer's content changed (layer id); for repaints
    edited = Signal()  # an undoable edit finished (live mode regenerates after these)
    history_changed = Signal()
    settings_changed = Signal()
    references_changed = Signal()  # reference slots filled, emptied or edited

    def __init__(self, width: int = 512, height: int = 512, parent: QObject | None = None):
        super().__init__(parent)
        self.width, self.height = check_size(width, height)
        self.layers: list[Layer] = []
        self.history: list[HistoryEntry] = []
        self.references: list[ReferenceSlot] = []  # the generate panel's filled slots, in order
        self.settings = GenSettings()
        self.active_id: str | None = None
        self.undo_stack = QUndoStack(self)
        self.dirty = False
        # Results of this canvas's client that the worker finished at or after this time (worker
        # clock, seconds since the epoch) and that are not in ``history`` belong here: they finished
        # while the canvas was closed or disconnected (session.sync_history). A new document starts
        # at 0 (it adopts what was lost); File > New and Open move it to "now".
        self.results_since = 0.0
        self.undo_stack.indexChanged.connect(self._on_undo_index)

    def reset(self, width: int, height: int) -> None:
        """An empty document of a new size (settings are kept: they are the artist's, not the picture's)."""
        self.width, self.height = check_size(width, height)
        self.undo_stack.clear()
        self.layers, self.history, self.active_id, self.dirty = [], [], None, False
        self.references = []
        self.results_since = time.time()  # a clean slate: earlier results belong to the previous document
        self.layers_changed.emit()
        self.references_changed.emit()
        self.history_changed.emit()
        self.settings_changed.emit()

    # ---- queries ------------------------------------------------------------------------------

    def layer(self, layer_id: str) -> Layer:
        for layer in self.layers:
            if layer.id == layer_id:
                return layer
        raise CanvasError(f"no layer with id {layer_id!r}")

    def index_of(self, layer_id: str) -> int:
        return self.layers.index(self.layer(layer_id))

    @property
    def active(self) -> Layer | None:
        for layer in self.layers:
            if layer.id == self.active_id:
                return layer
        return self.layers[-1] if self.layers else None

    def new_layer(self, kind: str, name: str | None = None, image: QImage | None = None) -> Layer:
        """A fresh layer (not yet added: push ``commands.AddLayer`` to add it undoably)."""
        if kind not in LAYER_KINDS:
            raise CanvasError(f"layer kind must be one of {', '.join(LAYER_KINDS)}; got {kind!r}")
        count = sum(1 for layer in self.layers if layer.kind == kind) + 1
        layer = Layer(kind=kind, name=name or f"{kind.capitalize()} {count}")
        if kind != "pose":
            if image is None:
                layer.image = imaging.blank(self.width, self.height)
            elif image.size().width() == self.width and image.size().height() == self.height:
                layer.image = image.convertToFormat(imaging.LAYER_FORMAT)
            else:
                layer.image = imaging.fit_into(image, self.width, self.height)
        if kind in DEFAULT_CONTROL:
            layer.control = ControlSettings(kind=DEFAULT_CONTROL[kind])
        if kind in ("pose", "depth"):  # these exist to steer generation
            layer.control.enabled = True
        return layer

    def set_active(self, layer_id: str | None) -> None:
        self.active_id = layer_id
        self.layers_changed.emit()

    # ---- mutators used by undo commands (and by loading) -------------------------------------

    def _insert(self, index: int, layer: Layer) -> None:
        self.layers.insert(index, layer)
        self.active_id = layer.id
        self.layers_changed.emit()

    def _remove(self, layer_id: str) -> tuple[int, Layer]:
        index = self.index_of(layer_id)
        layer = self.layers.pop(index)
        if self.active_id == layer_id:
            self.active_id = self.layers[min(index, len(self.layers) - 1)].id if self.layers else None
        self.layers_changed.emit()
        return index, layer

    def _move(self, layer_id: str, index: int) -> None:
        layer = self.layers.pop(self.index_of(layer_id))
        self.layers.insert(index, layer)
        self.layers_changed.emit()

    def _set_image(self, layer_id: str, image: QImage) -> None:
        self.layer(layer_id).image = image
        self.pixels_changed.emit(layer_id)

    def _set_people(self, layer_id: str, people: list[Person]) -> None:
        self.layer(layer_id).people = copy_people(people)
        self.pixels_changed.emit(layer_id)

    def _set_props(self, layer_id: str, props: dict[str, Any]) -> None:
        layer = self.layer(layer_id)
        for key, value in props.items():
            if key == "control":
                value = ControlSettings(**value) if isinstance(value, dict) else value
                value.validate()
            elif key == "opacity":
                value = check_opacity(value, f"{layer.name}: opacity")
            elif key == "region":
                value = RegionSettings(**value) if isinstance(value, dict) else value
                value.validate()
            elif key not in ("name", "visible"):
                raise CanvasError(f"layer property {key!r} cannot be set")
            setattr(layer, key, value)
        self.layers_changed.emit()
        self.pixels_changed.emit(layer_id)

    def _set_references(self, slots: list[ReferenceSlot]) -> None:
        if len(slots) > MAX_REFERENCES:
            raise CanvasError(f"at most {MAX_REFERENCES} reference pictures")
        for slot in slots:
            slot.validate()
        self.references = list(slots)
        self.references_changed.emit()

    def _resize(self, width: int, height: int, images: dict[str, QImage], people: dict[str, list[Person]]) -> None:
        """A new document size with every layer's content given for it (the upscale's undo step)."""
        self.width, self.height = check_size(width, height)
        for layer in self.layers:
            if layer.id in images:
                layer.image = images[layer.id]
            if layer.id in people:
                layer.people = copy_people(people[layer.id])
        self.layers_changed.emit()
        self.settings_changed.emit()  # the size the panel shows

    def scaled_content(self, width: int, height: int) -> tuple[dict[str, QImage], dict[str, list[Person]]]:
        """Every layer's content resampled to ``width`` x ``height`` (smooth); pose joints (hands and
        face too) rescaled the way an OpenPose file of the old size is read into the new one."""
        from PySide6.QtCore import Qt

        images, people = {}, {}
        for layer in self.layers:
            if layer.image is not None:
                images[layer.id] = layer.image.scaled(width, height, Qt.AspectRatioMode.IgnoreAspectRatio,
                                                      Qt.TransformationMode.SmoothTransformation)
            if layer.kind == "pose":
                people[layer.id] = from_openpose(to_openpose(layer.people, self.width, self.height), width, height)
        return images, people

    # ---- settings and history (not undoable: they are not drawing) ---------------------------

    def update_settings(self, **changes: Any) -> None:
        """Change settings. Setting a sampling field (DEFAULTED_SETTINGS) chooses it over the
        model's default, unless the same call says which are ``explicit``."""
        if "explicit" not in changes and any(name in changes for name in DEFAULTED_SETTINGS):
            chosen = set(self.settings.explicit) | {name for name in DEFAULTED_SETTINGS if name in changes}
            changes["explicit"] = [name for name in DEFAULTED_SETTINGS if name in chosen]
        for key, value in changes.items():
            if not hasattr(self.settings, key):
                raise CanvasError(f"unknown setting {key!r}")
            setattr(self.settings, key, value)
        self.dirty = True
        self.settings_changed.emit()

    def add_history(self, entry: HistoryEntry) -> None:
        self.history.insert(0, entry)  # newest first, as the panel lists them
        self.dirty = True
        self.history_changed.emit()

    def add_history_entries(self, entries: list[HistoryEntry]) -> None:
        """Several results at once, oldest first (one change: one autosave)."""
        for entry in entries:
            self.history.insert(0, entry)
        self.dirty = True
        self.history_changed.emit()

    def find_result(self, sha256: str) -> HistoryEntry | None:
        return next((entry for entry in self.history if entry.sha256 == sha256), None)

    def has_result(self, sha256: str) -> bool:
        return self.find_result(sha256) is not None

    def history_entry(self, entry_id: str) -> HistoryEntry:
        for entry in self.history:
            if entry.id == entry_id:
                return entry
        raise CanvasError(f"no history entry {entry_id!r}")

    def settings_dict(self) -> dict:
        return asdict(self.settings)

    def _on_undo_index(self, _index: int) -> None:
        self.dirty = True
        self.edited.emit()
