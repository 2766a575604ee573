"""Synthetic utility generator: deterministic CIS master data, head-end files and ground truth.

    from smartmdm_pipelines.simulate import SimulationSpec, generate
    summary = generate(out_dir, SimulationSpec(meters=500, days=7, seed=42))

See ``generate.py`` for the flow and ``docs/generic_csv.md`` for the head-end file format.

A subpackage of its own, outside the runtime path: it writes files the pipelines then read like
any utility's, and imports nothing of the package but itself and ``domain/``. Only the entry
points (``cli.py``: ``smartmdm generate``, ``demo.py``) import it; nothing in services/, defs/,
store/, adapters/ or domain/ does (``smartmdm_pipelines_tests/test_layering.py`` checks both).
"""

from .generate import generate
from .spec import GenerationSummary, SimulationSpec

__all__ = ["GenerationSummary", "SimulationSpec", "generate"]
