"""The acquisition chain: what a line-scan X-ray machine does to the ideal attenuation maps.

A baggage scanner moves the belt past a line of detector elements, one image row per element when
the belt moves along x (one column per element when the images are stored turned). That gives the
artefacts simulated here:

* detector blur (finite pixel size, focal spot, scatter): a Gaussian on the *intensity*;
* quantum noise: the detected quanta are Poisson; at the counts involved a symmetric deviate with
  variance equal to the mean is indistinguishable and much cheaper;
* per-element gain residuals after flat-field calibration: faint streaks along the belt direction,
  a few "hot" elements give a clearly visible line;
* gain droop at the ends of the detector array (edge gain variation).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScannerProfile:
    """Settings of one simulated scanner.

    Attributes:
        photons: ``(low, high)`` mean detected quanta per pixel through air.
        blur_sigma_px: detector point-spread, Gaussian sigma in output pixels.
        gain_sigma: standard deviation of the per-element gain residual (relative).
        streaks: number of detector elements with a large gain error (visible lines).
        streak_gain: relative gain error of those elements (signed magnitude bound).
        edge_droop: relative gain loss at the far end of the detector array.
        belt_along_x: whether the belt moves along image x (detector elements are rows) or y.
        edge_enhance: unsharp-mask strength of the display processing.
        display_scale: display contrast (> 1 paler), see :func:`~detectors.synth.xray_display.darkness`.
    """

    photons: tuple[float, float]
    blur_sigma_px: float
    gain_sigma: float
    streaks: int
    streak_gain: float
    edge_droop: float
    belt_along_x: bool
    edge_enhance: float
    display_scale: float


def sample_profile(rng: np.random.Generator) -> ScannerProfile:
    """A random but plausible scanner: each image may come from a different machine."""
    photons_low = float(rng.uniform(8000.0, 40000.0))
    return ScannerProfile(
        photons=(photons_low, photons_low * float(rng.uniform(1.2, 2.0))),
        blur_sigma_px=float(rng.uniform(0.45, 1.0)),
        gain_sigma=float(rng.uniform(0.0, 0.006)),
        streaks=int(rng.choice([0, 0, 0, 1, 2, 3])),
        streak_gain=float(rng.uniform(0.01, 0.04)),
        edge_droop=float(rng.uniform(0.0, 0.025)),
        belt_along_x=bool(rng.random() < 0.75),
        edge_enhance=float(rng.uniform(0.6, 1.6)),
        display_scale=float(rng.uniform(0.8, 1.25)),
    )


def acquire(att: FloatArray, profile: ScannerProfile, rng: np.random.Generator) -> FloatArray:
    """Simulate the measurement of an ideal attenuation image.

    Args:
        att: ``(H, W, 2)`` float32 ideal attenuation (low, high energy); not modified.
        profile: scanner settings.
        rng: random generator (noise, gains).

    Returns:
        ``(H, W, 2)`` float32 measured attenuation ``-ln(counts / counts_air)``, >= 0 except for
        noise around zero.
    """
    h, w = att.shape[:2]
    intensity = cv2.exp(-att)
    if profile.blur_sigma_px > 0:
        intensity = cv2.GaussianBlur(intensity, (0, 0), profile.blur_sigma_px)
    # One gain per detector element, slightly different in the two detector layers.
    elements = h if profile.belt_along_x else w
    gain = 1.0 + profile.gain_sigma * rng.standard_normal((elements, 2))
    if profile.streaks:
        bad = rng.integers(0, elements, size=profile.streaks)
        gain[bad] += rng.uniform(-1.0, 1.0, size=(profile.streaks, 1)) * profile.streak_gain
    if profile.edge_droop > 0:
        # Gain falls off over the last ~15 % of the array at one end (the L-shaped array's corner).
        ramp = np.clip((np.linspace(0.0, 1.0, elements) - 0.85) / 0.15, 0.0, 1.0)[:, None]
        if rng.random() < 0.5:
            ramp = ramp[::-1]
        gain = gain * (1.0 - profile.edge_droop * ramp)
    gain = gain[:, None, :] if profile.belt_along_x else gain[None, :, :]
    air = np.asarray(profile.photons, dtype=np.float32)
    counts: FloatArray = np.asarray(intensity, dtype=np.float32)  # in place from here: full-frame passes dominate
    counts *= (air * gain).astype(np.float32)
    # Quantum noise with the Poisson variance (= mean). The zero-mean, unit-variance deviate is the
    # sum of two uniforms (triangular): at these counts indistinguishable from a Gaussian in the
    # image, and several times cheaper to draw than normal deviates.
    u = rng.random((2, h, w, 2), dtype=np.float32)
    deviate = u[0]
    deviate += u[1]
    deviate -= np.float32(1.0)
    deviate *= np.float32(np.sqrt(6.0))
    deviate *= cv2.sqrt(counts)
    counts += deviate
    # Calibration divides by the air counts of a *nominal* element, so gain residuals remain.
    np.maximum(counts, np.float32(0.5), out=counts)
    counts *= np.float32(1.0) / air
    measured = cv2.log(counts)
    np.negative(measured, out=measured)
    return np.asarray(measured, dtype=np.float32)
