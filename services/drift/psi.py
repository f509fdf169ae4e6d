"""PSI moved to the shared library (`services.common.psi`) so the outcomes service's shadow
comparison measures it exactly as drift does; drift's modules import it from there. This name
stays only for tests/unit/drift, which still import it here."""

from services.common.psi import (
    DEFAULT_EPSILON,
    FloatArray,
    ReferenceBins,
    bin_proportions,
    population_stability,
    psi,
)

__all__ = [
    "DEFAULT_EPSILON",
    "FloatArray",
    "ReferenceBins",
    "bin_proportions",
    "population_stability",
    "psi",
]
