"""The Upscale dialog: factor, super-resolution model (or Lanczos) and an optional refine strength."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QWidget,
)

from .document import UPSCALE_FACTORS, Document

LANCZOS = "Lanczos (no model)"


class UpscaleDialog(QDialog):
    def __init__(self, doc: Document, upscalers: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Upscale")
        self.doc = doc
        s = doc.settings
        self.factor = QComboBox()
        for f in UPSCALE_FACTORS:
            self.factor.addItem(f"×{f}", f)
        self.factor.setCurrentIndex(max(0, self.factor.findData(s.upscale_factor)))
        self.model = QComboBox(editable=True)
        self.model.addItems([LANCZOS, *upscalers])
        self.model.setCurrentText(s.upscale_model or LANCZOS)
        self.model.setToolTip("A super-resolution model the worker has (ESRGAN family and others), or Lanczos")
        self.refine = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, value=s.upscale_refine)
        self.refine.setToolTip("0: the upscale alone. Above 0: a tiled img2img pass at this strength with the "
                               "prompt, regions and references (0.2–0.35 adds detail and keeps the picture)")
        self.size_label = QLabel()
        self.factor.currentIndexChanged.connect(self._show_size)
        form = QFormLayout(self)
        form.addRow("Factor", self.factor)
        form.addRow("Model", self.model)
        form.addRow("Refine strength", self.refine)
        form.addRow("Result", self.size_label)
        form.addRow(QLabel("The result lands as a new layer on top; the document grows to its size\n"
                           "(every layer is resampled; Undo gives them back)."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._show_size()

    def _show_size(self) -> None:
        f = int(self.factor.currentData())
        self.size_label.setText(f"{self.doc.width * f} × {self.doc.height * f}")

    def choices(self) -> dict:
        """The dialog's settings as GenSettings fields."""
        model = self.model.currentText().strip()
        return {"upscale_factor": int(self.factor.currentData()),
                "upscale_model": "" if model in ("", LANCZOS) else model,
                "upscale_refine": round(float(self.refine.value()), 3)}
