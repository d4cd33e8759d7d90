"""Prompt, settings and the action buttons; progress and queue position."""

from __future__ import annotations

from brushwork.errors import BrushworkError
from brushwork.recipe import MAX_CFG, MAX_SEED, MAX_STEPS, SAMPLERS
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .document import DEFAULTED_SETTINGS, Document
from .recipes import base_recipe, preset_names, sampling
from .references_panel import ReferencesBox
from .session import Session

# Seamless tiling as the panel offers it: (label, Recipe.tiling).
TILING_CHOICES = (("Off", ""), ("Left–right (x)", "x"), ("Top–bottom (y)", "y"), ("Both ways (xy)", "xy"))


class GeneratePanel(QWidget):
    def __init__(self, doc: Document, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.doc, self.session = doc, session
        self._syncing = False

        self.prompt = QPlainTextEdit(placeholderText="Prompt: what the picture shows")
        self.prompt.setObjectName("prompt")
        self.prompt.setFixedHeight(76)
        self.negative = QPlainTextEdit(placeholderText="Negative prompt")
        self.negative.setFixedHeight(48)
        self.preset = QComboBox()
        self.preset.addItems(["(none)"] + preset_names())
        self.model = QComboBox(editable=True)
        self.model.setPlaceholderText("worker default")
        self.model.lineEdit().setPlaceholderText("worker default")
        self.sampler = QComboBox()
        self.sampler.addItems(list(SAMPLERS))
        self.steps = QSpinBox(minimum=1, maximum=MAX_STEPS)
        self.cfg = QDoubleSpinBox(minimum=0.0, maximum=MAX_CFG, singleStep=0.5, decimals=1)
        # A QSpinBox stops at 2**31 - 1, but seeds (the worker's random ones too) go up to 2**32 - 1:
        # a double spin box with no decimals holds them all exactly.
        self.seed = QDoubleSpinBox(minimum=0, maximum=MAX_SEED, decimals=0, singleStep=1)
        self.seed.setObjectName("seed")
        self.seed_lock = QCheckBox("Lock")
        self.strength = QDoubleSpinBox(minimum=0.05, maximum=1.0, singleStep=0.05, decimals=2)
        self.size_label = QLabel()
        # The chosen model's defaults (from the worker) and which of them apply (issue 19).
        self.defaults_label = QLabel()
        self.defaults_label.setObjectName("muted")
        self.defaults_label.setWordWrap(True)
        self.defaults_button = QPushButton("Use model defaults", clicked=self.use_model_defaults)
        self.defaults_button.setToolTip("Steps, CFG and sampler follow the model again")
        self.tiling = QComboBox()
        for label, axes in TILING_CHOICES:
            self.tiling.addItem(label, axes)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow("Preset", self.preset)
        form.addRow("Model", self.model)
        form.addRow("Sampler", self.sampler)
        steps_row = QHBoxLayout()
        steps_row.addWidget(self.steps)
        steps_row.addWidget(QLabel("CFG"))
        steps_row.addWidget(self.cfg)
        form.addRow("Steps", steps_row)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_lock)
        form.addRow("Seed", seed_row)
        form.addRow("Strength", self.strength)
        form.addRow("Size", self.size_label)
        form.addRow("Seamless", self.tiling)
        defaults_row = QHBoxLayout()
        defaults_row.addStretch(1)
        defaults_row.addWidget(self.defaults_button)
        self.references = ReferencesBox(doc)

        self.generate_button = QPushButton("Generate", objectName="primary", clicked=lambda: session.run("generate"))
        self.refine_button = QPushButton("Refine", clicked=lambda: session.run("refine"))
        self.inpaint_button = QPushButton("Inpaint", clicked=lambda: session.run("inpaint"))
        self.upscale_button = QPushButton("Upscale…")  # the window opens its dialog
        self.live_button = QPushButton("Live", checkable=True, toggled=session.set_live)
        self.cancel_button = QPushButton("Cancel", clicked=session.cancel, enabled=False)
        buttons = QGridLayout()
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.refine_button, 1, 0)
        buttons.addWidget(self.inpaint_button, 1, 1)
        buttons.addWidget(self.live_button, 2, 0)
        buttons.addWidget(self.upscale_button, 2, 1)
        buttons.addWidget(self.cancel_button, 3, 0, 1, 2)

        self.progress = QProgressBar(textVisible=True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.queue_label = QLabel("")
        self.queue_label.setObjectName("muted")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.prompt)
        layout.addWidget(self.negative)
        layout.addLayout(form)
        layout.addWidget(self.defaults_label)  # full width: it wraps instead of being cut
        layout.addLayout(defaults_row)
        layout.addWidget(self.references)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.queue_label)
        layout.addStretch(1)

        self.prompt.textChanged.connect(lambda: self._set(prompt=self.prompt.toPlainText()))
        self.negative.textChanged.connect(lambda: self._set(negative_prompt=self.negative.toPlainText()))
        self.model.currentTextChanged.connect(lambda text: self._set(model=text.strip()))
        self.preset.currentTextChanged.connect(self._preset_chosen)
        self.sampler.currentTextChanged.connect(lambda text: self._choose(sampler=text))
        self.steps.valueChanged.connect(lambda v: self._choose(steps=v))
        self.cfg.valueChanged.connect(lambda v: self._choose(cfg=v))
        self.seed.valueChanged.connect(lambda v: self._set(seed=int(v)))
        self.seed_lock.toggled.connect(lambda v: self._set(seed_locked=v))
        self.strength.valueChanged.connect(lambda v: self._set(strength=v))
        self.tiling.currentIndexChanged.connect(lambda _i: self._set(tiling=self.tiling.currentData()))
        doc.settings_changed.connect(self.sync)
        doc.layers_changed.connect(self.sync)
        session.progress.connect(self._on_progress)
        session.queue_position.connect(self._on_queue)
        session.busy_changed.connect(self.cancel_button.setEnabled)
        session.models_loaded.connect(self._on_models)
        session.catalog_changed.connect(self.sync)
        self.sync()

    def sync(self) -> None:
        s = self.doc.settings
        self._syncing = True
        try:
            if self.prompt.toPlainText() != s.prompt:
                self.prompt.setPlainText(s.prompt)
            if self.negative.toPlainText() != s.negative_prompt:
                self.negative.setPlainText(s.negative_prompt)
            self.preset.setCurrentText(s.preset or "(none)")
            self.model.setCurrentText(s.model)
            # What will run: the artist's choices, the model's defaults for the rest.
            defaults = self.session.defaults()
            running = sampling(self.doc, defaults, shown=True)
            self.sampler.setCurrentText(running["sampler"])
            self.steps.setValue(running["steps"])
            self.cfg.setValue(running["cfg"])
            self._show_defaults(defaults)
            self.seed.setValue(min(int(s.seed), MAX_SEED))
            self.seed_lock.setChecked(s.seed_locked)
            self.strength.setValue(s.strength)
            self.size_label.setText(f"{self.doc.width} × {self.doc.height}")
            self.tiling.setCurrentIndex(max(0, self.tiling.findData(s.tiling)))
        finally:
            self._syncing = False

    def _set(self, **changes) -> None:
        if not self._syncing:
            self.doc.update_settings(**changes)

    def _choose(self, **changes) -> None:
        """A sampling field the artist set: it wins over the model's default from now on."""
        if not self._syncing:
            self.doc.update_settings(**changes)  # setting one makes it explicit

    def use_model_defaults(self) -> None:
        self.doc.update_settings(explicit=[])

    def _show_defaults(self, defaults) -> None:
        s = self.doc.settings
        mine = [name for name in DEFAULTED_SETTINGS if name in s.explicit]
        model = s.model or self.session.catalog.default_name() or "the worker's default model"
        if defaults is None:
            text = f"Defaults of {model}: not known yet; the worker fills what you leave to the model"
            if mine:
                text += ". Yours: " + ", ".join("CFG" if n == "cfg" else n for n in mine)
            self.defaults_label.setText(text)
            self.defaults_button.setEnabled(bool(mine))
            for box in (self.steps, self.cfg, self.sampler):
                box.setToolTip("")
            return
        text = f"Defaults of {model}: {defaults.describe()}"
        if defaults.why:
            text += f" ({defaults.why})"
        if mine:
            text += ". Yours: " + ", ".join("CFG" if n == "cfg" else n for n in mine)
        if (defaults.width, defaults.height) != (self.doc.width, self.doc.height):
            text += f". The document is {self.doc.width}×{self.doc.height}"
        self.defaults_label.setText(text)
        self.defaults_button.setEnabled(bool(mine))
        for name, box in (("steps", self.steps), ("cfg", self.cfg), ("sampler", self.sampler)):
            box.setToolTip("your value" if name in mine else "the model's default")

    def _preset_chosen(self, name: str) -> None:
        if self._syncing:
            return
        name = "" if name == "(none)" else name
        changes = {"preset": name}
        try:  # show the preset's own steps/sampler/CFG/tiling so what runs is what the panel says
            r = base_recipe(name)
            changes["tiling"] = r.tiling
            # The sampling fields the preset sets are a choice (the artist may change them); those
            # it leaves out stay as they were: the artist's, or the model's defaults.
            given = [f for f in DEFAULTED_SETTINGS if f in _preset_fields(name)]
            if given and self.session.catalog.keeps_own_sampling(self.doc.settings.model):
                self.queue_label.setText("The preset's steps, CFG and sampler are for full-size SD models: "
                                         "this model keeps its own")
                given = []
            changes.update({f: getattr(r, f) for f in given})
            chosen = set(self.doc.settings.explicit) | set(given)
            changes["explicit"] = [f for f in DEFAULTED_SETTINGS if f in chosen]
        except BrushworkError as exc:
            self.queue_label.setText(str(exc))
        self.doc.update_settings(**changes)

    def _on_models(self, names: list) -> None:
        current = self.model.currentText()
        self._syncing = True
        self.model.clear()
        self.model.addItems(names)
        self.model.setCurrentText(current)
        self._syncing = False

    def _on_progress(self, step: int, total: int) -> None:
        if total <= 0:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("idle")
        else:
            self.progress.setRange(0, total)
            self.progress.setValue(step)
            self.progress.setFormat(f"step {step} / {total}")

    def _on_queue(self, position: int) -> None:
        if position < 0:
            self.queue_label.setText("")
        elif position == 0:
            self.queue_label.setText("next in the worker's queue")
        else:
            self.queue_label.setText(f"{position} job{'s' if position > 1 else ''} ahead in the queue")


def _preset_fields(name: str) -> list[str]:
    if not name:
        return []
    from brushwork import presets

    return list(presets.load_preset(name).fields)
