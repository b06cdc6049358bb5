"""Materials of the X-ray simulator and their attenuation at the scanner's two energies.

A dual-energy scanner measures, for every pixel, the transmitted fraction of a low- and of a
high-energy beam. Beer–Lambert gives, over every material ``m`` crossed by the ray,

    I / I0 = exp(-Σ_m (μ/ρ)_m(E) · ρ_m · t_m)

with ``μ/ρ`` the mass attenuation coefficient (cm²/g), ``ρ`` the density (g/cm³) and ``t`` the
path length (cm). The simulator works with the *line integral* ``A(E) = -ln(I/I0)`` ("attenuation",
dimensionless): overlapping objects add their attenuations, which is why every object is rendered to
a pair of attenuation maps and composited by addition.

The table below uses order-of-magnitude values of the NIST XCOM total mass attenuation coefficient
(coherent scattering included) at two effective energies that stand for a typical 140–160 kVp
baggage scanner: ~60 keV for the low-energy (front, unfiltered) detector and ~150 keV for the
high-energy (rear, copper-filtered) detector. Values, cm²/g::

    material              ρ g/cm³   μ/ρ @60 keV   μ/ρ @150 keV   ratio   reference
    cellulose/cotton      0.25–0.8     0.200         0.140        1.43   XCOM cellulose
    polyethylene/ABS      1.05         0.197         0.141        1.40   XCOM polyethylene
    water                 1.00         0.206         0.151        1.36   XCOM water
    glass (borosilicate)  2.23         0.268         0.133        2.02   XCOM Pyrex
    aluminium             2.70         0.278         0.138        2.02   XCOM Al
    steel (iron)          7.87         1.205         0.196        6.15   XCOM Fe
    copper / brass        8.96         1.593         0.222        7.18   XCOM Cu
    lead                  11.35        5.021         2.014        2.49   XCOM Pb (K-edge 88 keV)
    gold                  19.32        4.528         1.859        2.44   XCOM Au (K-edge 80.7 keV)

Lead and gold have their K-edge between the two energies, so their low/high ratio is *smaller* than
iron's; a real scanner's calibration still classifies them as metal and, at any real thickness,
they are opaque at both energies (2 mm of gold: A ≈ 35 at 60 keV), which the display shows as black.
:func:`detectors.synth.xray_display.material_coordinate` therefore treats every ratio above the
inorganic band as metal. Mixtures (battery cells, circuit boards) are weighted by mass fraction,
which is exact for mass attenuation coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

#: Effective energies (keV) the coefficient table stands for.
LOW_ENERGY_KEV = 60.0
HIGH_ENERGY_KEV = 150.0


@dataclass(frozen=True)
class Material:
    """A homogeneous material.

    Attributes:
        name: identifier used in :data:`MATERIALS`.
        density: g/cm³.
        mu_low: mass attenuation coefficient at :data:`LOW_ENERGY_KEV`, cm²/g.
        mu_high: mass attenuation coefficient at :data:`HIGH_ENERGY_KEV`, cm²/g.
    """

    name: str
    density: float
    mu_low: float
    mu_high: float
    _linear: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.density <= 0 or self.mu_low <= 0 or self.mu_high <= 0:
            raise ValueError(f"material {self.name!r}: density and coefficients must be positive")
        lin = np.array([self.mu_low * self.density, self.mu_high * self.density], dtype=np.float32)
        lin.flags.writeable = False
        object.__setattr__(self, "_linear", lin)

    @property
    def linear(self) -> npt.NDArray[np.float32]:
        """``(2,)`` float32 linear attenuation coefficients ``μ·ρ`` (1/cm), low then high energy (read-only)."""
        return self._linear

    @property
    def ratio(self) -> float:
        """Low/high attenuation ratio, the quantity the display turns into a hue."""
        return self.mu_low / self.mu_high


def mixture(name: str, density: float, parts: Mapping[Material, float]) -> Material:
    """A material made of others, weighted by mass fraction.

    Args:
        name: name of the mixture.
        density: bulk density of the mixture, g/cm³.
        parts: component material -> mass fraction; fractions must sum to 1.

    Raises:
        ValueError: when the fractions do not sum to 1 (±1e-6) or one is negative.
    """
    total = sum(parts.values())
    if abs(total - 1.0) > 1e-6 or any(f < 0 for f in parts.values()):
        raise ValueError(f"mixture {name!r}: mass fractions must be >= 0 and sum to 1, got {total}")
    mu_low = sum(m.mu_low * f for m, f in parts.items())
    mu_high = sum(m.mu_high * f for m, f in parts.items())
    return Material(name, density, mu_low, mu_high)


_CELLULOSE = Material("cellulose", 0.80, 0.200, 0.140)
_PLASTIC = Material("plastic", 1.05, 0.197, 0.141)
_GLASS = Material("glass", 2.23, 0.268, 0.133)
_ALUMINIUM = Material("aluminium", 2.70, 0.278, 0.138)
_STEEL = Material("steel", 7.87, 1.205, 0.196)
_COPPER = Material("copper", 8.96, 1.593, 0.222)
# LiCoO2 cathode: 60 % cobalt by mass; cobalt (Z=27) sits between iron and copper.
_COBALT_OXIDE = Material("cobalt_oxide", 5.0, 0.6 * 1.40 + 0.4 * 0.20, 0.6 * 0.21 + 0.4 * 0.14)

_TABLE: tuple[Material, ...] = (
    # Organics (Z_eff ~6-8). Densities differ, coefficients barely do.
    Material("fabric", 0.25, 0.200, 0.140),  # clothes, bag fabric, loosely packed
    Material("paper", 0.85, 0.200, 0.140),  # books, banknotes, cardboard
    _PLASTIC,
    Material("rubber", 1.15, 0.205, 0.143),  # shoe soles, grips, tyres of trolley wheels
    Material("wood", 0.60, 0.200, 0.141),
    Material("water", 1.00, 0.206, 0.151),  # drinks, shampoo, gels
    Material("organic_dense", 1.25, 0.203, 0.146),  # food, chocolate, soap, compressed powders
    Material("drug", 1.20, 0.201, 0.144),  # cocaine/heroin hydrochloride powders, resins
    # Inorganics / light metals (Z_eff ~10-18).
    _GLASS,
    _ALUMINIUM,
    mixture("pcb", 1.85, {_GLASS: 0.6, _PLASTIC: 0.4}),  # FR-4 glass-epoxy board
    Material("ceramic", 2.40, 0.275, 0.136),
    # Metals (Z_eff > 18).
    _STEEL,
    _COPPER,
    Material("zinc", 7.14, 1.830, 0.240),  # die-cast buckles, zips
    # Pouch/cylindrical Li-ion cell: copper and aluminium foils, LiCoO2, graphite and electrolyte.
    mixture(
        "battery",
        2.60,
        {_COPPER: 0.25, _COBALT_OXIDE: 0.35, _ALUMINIUM: 0.10, _CELLULOSE: 0.30},
    ),
    Material("lead", 11.35, 5.021, 2.014),
    Material("gold", 19.32, 4.528, 1.859),
)

#: Every material by name (read-only).
MATERIALS: Mapping[str, Material] = MappingProxyType({m.name: m for m in _TABLE})


def material(name: str) -> Material:
    """The material called ``name``.

    Raises:
        KeyError: with the list of known names when ``name`` is unknown.
    """
    try:
        return MATERIALS[name]
    except KeyError:
        raise KeyError(f"unknown X-ray material {name!r}; known: {sorted(MATERIALS)}") from None


def attenuation(mat: Material, thickness_cm: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Beer–Lambert line integrals of a thickness map.

    Args:
        mat: the material.
        thickness_cm: path length through ``mat``, cm, any shape ``S``.

    Returns:
        ``S + (2,)`` float32: ``-ln(I/I0)`` at the low then the high energy.
    """
    t = np.asarray(thickness_cm, dtype=np.float32)
    return t[..., None] * mat.linear


def transmission(att: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """``I/I0 = exp(-A)`` for an attenuation array (any shape), float32."""
    return np.exp(-np.asarray(att, dtype=np.float32))
