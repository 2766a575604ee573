"""Synthetic utility generator: deterministic CIS master data, head-end files and ground truth.

    from smartmdm_pipelines.simulate import SimulationSpec, generate
    summary = generate(out_dir, SimulationSpec(meters=500, days=7, seed=42))

See ``generate.py`` for the flow and ``docs/generic_csv.md`` for the head-end file format.
"""

from .generate import generate
from .spec import GenerationSummary, SimulationSpec

__all__ = ["GenerationSummary", "SimulationSpec", "generate"]
