"""Optional estimators: a control picture (depth, pose, lines, edges) from an ordinary photo.

All but canny come from ``controlnet-aux`` (``pip install brushwork[control]``) or transformers,
imported only when used. Their weights come from the Hugging Face hub on first use. Licences
differ and some forbid commercial use: ``ESTIMATORS`` states each so the CLI and the UI can show
it where the estimator is offered (``brushwork presets --estimators``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from ..errors import BrushworkError, MissingDependencyError, ModelNotFoundError, RecipeError
from .images import fit


@dataclass(frozen=True)
class Estimator:
    name: str
    kind: str  # the control kind its output feeds
    package: str  # "" = built in
    weights: str  # hub repo the weights come from ("" = none)
    licence: str
    commercial_use: bool
    summary: str


ESTIMATORS: dict[str, Estimator] = {e.name: e for e in (
    Estimator("canny", "canny", "", "", "built in (Apache-2.0), no weights", True,
              "edges from a photo (Canny, 100/200)"),
    Estimator("depth-midas", "depth", "controlnet_aux", "lllyasviel/Annotators", "MIT", True,
              "depth from a photo (MiDaS)"),
    Estimator("depth-zoe", "depth", "controlnet_aux", "lllyasviel/Annotators", "MIT", True,
              "depth from a photo (ZoeDepth)"),
    Estimator("depth-anything", "depth", "transformers", "depth-anything/Depth-Anything-V2-Small-hf",
              "Apache-2.0 (Small only; Base/Large are non-commercial)", True,
              "depth from a photo (Depth Anything V2 Small)"),
    Estimator("openpose", "pose", "controlnet_aux", "lllyasviel/Annotators",
              "OpenPose weights: non-commercial research only", False, "body pose from a photo (OpenPose)"),
    Estimator("lineart", "lineart", "controlnet_aux", "lllyasviel/Annotators", "MIT", True,
              "line drawing from a photo"),
)}


def estimator_table() -> list[tuple[str, str, str, str]]:
    """(name, control kind, licence, what it does) rows for the CLI and UI."""
    return [(e.name, e.kind, e.licence, e.summary) for e in ESTIMATORS.values()]


def get_estimator(name: str, *, where: str = "preprocess") -> Estimator:
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise RecipeError(where, f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}") from None


def run_estimator(name: str, image: Image.Image, size: tuple[int, int], *, where: str = "preprocess") -> Image.Image:
    """Run estimator ``name`` on ``image``; return an RGB control picture at ``size``."""
    est = get_estimator(name, where=where)
    if est.name == "canny":
        from .lines import canny_image

        return canny_image(image, size)
    runner = _RUNNERS[est.name]
    try:
        out = runner(est, image.convert("RGB"))
    except BrushworkError:
        raise
    except (OSError, ValueError) as exc:
        # Offline without cached weights, or a hub error: say which weights and where from.
        raise ModelNotFoundError(
            f"estimator {est.name}: could not load its weights from {est.weights} ({_first_line(exc)}); "
            "download them once while online") from None
    return fit(out.convert("RGB"), size)


def _require(module: str, est: Estimator):
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = "pip install brushwork[control]" if est.package == "controlnet_aux" else f"pip install {est.package}"
        raise MissingDependencyError(
            f"estimator {est.name} needs the optional package {est.package}: {extra}") from None


def _aux(class_name: str) -> Callable[[Estimator, Image.Image], Image.Image]:
    def run(est: Estimator, image: Image.Image) -> Image.Image:
        aux = _require("controlnet_aux", est)
        detector = getattr(aux, class_name).from_pretrained(est.weights)
        return detector(image)
    return run


def _depth_anything(est: Estimator, image: Image.Image) -> Image.Image:
    transformers = _require("transformers", est)
    pipe = transformers.pipeline("depth-estimation", model=est.weights)
    # The pipeline's "depth" picture is already near = bright (it predicts disparity).
    return pipe(image)["depth"]


_RUNNERS = {
    "depth-midas": _aux("MidasDetector"),
    "depth-zoe": _aux("ZoeDetector"),
    "openpose": _aux("OpenposeDetector"),
    "lineart": _aux("LineartDetector"),
    "depth-anything": _depth_anything,
}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
