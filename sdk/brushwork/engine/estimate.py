"""What a Plan will cost on this device: peak memory above the loaded model, and seconds per image.

A cost model of the Plan's network calls (torch-free): the UNet's work is latent pixels per call x
calls (x2 with CFG; a ControlNet adds about half a UNet, FIELD_NOTES) x steps, the VAE's is the
pixels it encodes and decodes. Seconds = ``unet_s`` x UNet work + ``vae_s`` x VAE work; peak bytes =
the largest single UNet and VAE call's activations (``unet_b`` / ``vae_b`` per pixel) plus the
full-size buffers a tiled job keeps (docs/large-images.md).

The coefficients are measured (``calibrate()``, ``brushwork plan --calibrate``) on one model on one
device and saved per device in the state folder; without a calibration the defaults below, measured
on the bundled demo model on a shared 2-core CPU, are used. A model other than the one calibrated
is scaled by its UNet's size on disk (``scale``): a rough guide, which the printout says.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .plan import Plan

DEMO_UNET_BYTES = 3_371_208  # the bundled demo UNet file (other models scale by theirs)
CONTROLNET_SHARE = 0.45  # a ControlNet costs about this much of a UNet call (FIELD_NOTES: +38-52 %)


@dataclass(frozen=True)
class Calibration:
    device: str
    model: str  # what it was measured on
    unet_bytes: int  # that model's UNet size on disk (other models scale by theirs)
    unet_s: float  # seconds per UNet latent pixel per call
    vae_s: float  # seconds per VAE pixel (encode or decode)
    fixed_s: float  # per image (scheduler, prompt encode, Python)
    unet_b: float  # peak bytes per latent pixel of the largest UNet call
    vae_b: float  # peak bytes per pixel of the largest VAE call
    time_error: float  # the measured relative error of the time estimate on held-out jobs
    memory_error: float
    load: float = float("nan")  # load average per core while it was measured (the noise behind time_error)
    repeats: int = 1  # each job's time is the least of this many runs (what load adds, the minimum sheds)


# Measured 2026-12-04 by ``brushwork plan --calibrate`` on the bundled demo model, CPU, fp32, on a
# shared 2-core machine under a load of ~8 (other test runs): the time figures are noisy (held-out
# error 125 %), the memory ones less so (24 %). Calibrate on a quiet machine for better ones.
# Re-measured the same day with each time the least of 3 runs, at a load of 6.6 per core: time
# 115 %, memory 34 %; single runs of one job varied 2-3x, so load, not the cost model, dominates
# these figures (kept as they were: not meaningfully better).
DEFAULT = Calibration(device="cpu", model="brushwork-demo", unet_bytes=DEMO_UNET_BYTES, unet_s=1.84e-3, vae_s=0.0,
                      fixed_s=9.32, unet_b=0.0, vae_b=636.0, time_error=1.25, memory_error=0.24, load=4.0,
                      repeats=1)


@dataclass(frozen=True)
class Estimate:
    seconds: float  # per image
    peak_bytes: int  # above the loaded model
    unet_work: int  # latent pixels through the UNet (all calls, all steps)
    vae_work: int  # pixels through the VAE
    basis: str  # what the numbers rest on
    time_error: float = float("nan")  # the calibration's measured relative error (NaN: not measured)

    @property
    def seconds_range(self) -> tuple[float, float] | None:
        """(low, high) seconds within the measured error; None when it was not measured."""
        if self.time_error != self.time_error:
            return None
        return max(0.0, self.seconds * (1 - self.time_error)), self.seconds * (1 + self.time_error)

    def describe_time(self) -> str:
        """'12.3 s (5.1-19.5 s: measured error ±58 %)', honest about how far off it has been."""
        span = self.seconds_range
        if span is None:
            return f"{self.seconds:.1f} s (error not measured)"
        return f"{self.seconds:.1f} s ({span[0]:.1f}-{span[1]:.1f} s: measured error ±{self.time_error:.0%})"


def work(p: Plan) -> tuple[int, int, int, int]:
    """(UNet latent-pixel calls, VAE pixels, largest UNet call in latent pixels, largest VAE call in
    pixels) for one image of the plan."""
    guided = 2 if p.cfg > 1.0 else 1
    nets = 1 + CONTROLNET_SHARE * sum(len(c.steps) for c in p.controls) / max(1, p.denoise_steps)

    def unet(plan: Plan) -> tuple[float, int]:
        if plan.path == "plain":
            per_call = (plan.width // plan.vae_scale) * (plan.height // plan.vae_scale)
            return plan.denoise_steps * per_call * guided * nets, per_call * guided
        per_call = plan.tile_latent ** 2
        return plan.denoise_steps * plan.tiles * per_call * guided * nets, per_call * guided

    if p.path == "cropped_inpaint":
        if p.sub is None:
            return 0, 0, 0, 0
        return work(p.sub)
    u, u_peak = unet(p)
    area = p.width * p.height
    if p.path == "plain":
        vae = area * (2 if p.start == "init" else 1)
        return int(u), vae, u_peak, area
    tile_pixels = p.tile * p.tile
    vae = 2 * p.tiles * tile_pixels  # encode + decode, every tile
    if p.sub is not None:  # the base pass
        bu, bpeak = unet(p.sub)
        u, u_peak = u + bu, max(u_peak, bpeak)
        vae += p.sub.width * p.sub.height
    return int(u), vae, u_peak, tile_pixels


def full_size_bytes(p: Plan) -> int:
    """The tiled paths' full-size buffers: uint8 picture, float latent, float picture + weight plane
    of the decode blend, one uint8 picture per ControlNet (docs/large-images.md)."""
    if p.path == "plain":
        return 0
    area = p.width * p.height
    latent = 4 * 4 * area // (p.vae_scale ** 2)
    return 3 * area + 3 * latent + 16 * area + 3 * area * len(p.controls)


def estimate(p: Plan, calibration: Calibration = DEFAULT, *, unet_bytes: int = 0) -> Estimate:
    scale = unet_bytes / calibration.unet_bytes if unet_bytes and calibration.unet_bytes else 1.0
    u, v, u_peak, v_peak = work(p)
    seconds = calibration.fixed_s + scale * calibration.unet_s * u + calibration.vae_s * v
    peak = scale * calibration.unet_b * u_peak + calibration.vae_b * v_peak + full_size_bytes(p)
    basis = f"calibrated on {calibration.model} ({calibration.device})"
    if scale != 1.0:
        basis += f", scaled x{scale:.1f} by UNet size (rough)"
    if calibration.time_error == calibration.time_error:  # not NaN
        basis += f"; measured error: time ±{calibration.time_error:.0%}, memory ±{calibration.memory_error:.0%}"
        if calibration.load == calibration.load:
            basis += (f" (held-out jobs, least of {calibration.repeats} run{'s' if calibration.repeats != 1 else ''}, "
                      f"load {calibration.load:.1f} per core)")
    return Estimate(seconds=seconds, peak_bytes=int(peak), unet_work=u, vae_work=v, basis=basis,
                    time_error=calibration.time_error)


def calibration_path(state: Path, device: str) -> Path:
    return state / f"plan-calibration-{device}.json"


def load_calibration(state: Path, device: str) -> Calibration:
    path = calibration_path(state, device)
    try:
        return Calibration(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return DEFAULT


def save_calibration(state: Path, calibration: Calibration) -> Path:
    path = calibration_path(state, calibration.device)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(calibration), indent=2))
    return path
