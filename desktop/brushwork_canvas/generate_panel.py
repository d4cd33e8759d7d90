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

from .document import Document
from .recipes import base_recipe, preset_names
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

        self.generate_button = QPushButton("Generate", objectName="primary", clicked=lambda: session.run("generate"))
        self.refine_button = QPushButton("Refine", clicked=lambda: session.run("refine"))
        self.inpaint_button = QPushButton("Inpaint", clicked=lambda: session.run("inpaint"))
        self.live_button = QPushButton("Live", checkable=True, toggled=session.set_live)
        self.cancel_button = QPushButton("Cancel", clicked=session.cancel, enabled=False)
        buttons = QGridLayout()
        buttons.addWidget(self.generate_button, 0, 0, 1, 2)
        buttons.addWidget(self.refine_button, 1, 0)
        buttons.addWidget(self.inpaint_button, 1, 1)
        buttons.addWidget(self.live_button, 2, 0)
        buttons.addWidget(self.cancel_button, 2, 1)

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
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.queue_label)
        layout.addStretch(1)

        self.prompt.textChanged.connect(lambda: self._set(prompt=self.prompt.toPlainText()))
        self.negative.textChanged.connect(lambda: self._set(negative_prompt=self.negative.toPlainText()))
        self.model.currentTextChanged.connect(lambda text: self._set(model=text.strip()))
        self.preset.currentTextChanged.connect(self._preset_chosen)
        self.sampler.currentTextChanged.connect(lambda text: self._set(sampler=text))
        self.steps.valueChanged.connect(lambda v: self._set(steps=v))
        self.cfg.valueChanged.connect(lambda v: self._set(cfg=v))
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
            self.sampler.setCurrentText(s.sampler)
            self.steps.setValue(s.steps)
            self.cfg.setValue(s.cfg)
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

    def _preset_chosen(self, name: str) -> None:
        if self._syncing:
            return
        name = "" if name == "(none)" else name
        changes = {"preset": name}
        try:  # show the preset's own steps/sampler/CFG/tiling so what runs is what the panel says
            r = base_recipe(name)
            changes.update(steps=r.steps, cfg=r.cfg, sampler=r.sampler, tiling=r.tiling)
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
