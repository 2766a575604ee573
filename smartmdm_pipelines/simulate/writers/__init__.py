"""Head-end file writers by format name. Add a format: one module with a ``HeadEndWriter``
subclass (one file per delivery: ``base.CsvFileWriter`` or ``base.TextFileWriter``, which keep the
open-file cache and ``path_for``), registered here (and its limits in ``mixed.CARRIES``/``mixed.CARRY``). ``MixedWriter``
puts each head-end in its own format, with generic CSV for what a format cannot carry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import SCHEMAS, Delivery, HeadEndWriter
from .beacon_csv import BeaconCsvWriter
from .cmep import CmepWriter
from .generic_csv import GenericCsvWriter
from .green_button import GreenButtonWriter
from .mixed import MixedWriter
from .nem12 import Nem12Writer

REGISTRY: dict[str, Callable[[Path], HeadEndWriter]] = {
    "generic_csv": GenericCsvWriter,
    "green_button": GreenButtonWriter,
    "nem12": Nem12Writer,
    "cmep": CmepWriter,
    "beacon_csv": BeaconCsvWriter,
}


def get_writer(name: str, out_dir: Path) -> HeadEndWriter:
    """A new writer of format ``name`` writing under ``out_dir``."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown head-end format {name!r}; known: {sorted(REGISTRY)}") from None
    return factory(out_dir)


__all__ = ["REGISTRY", "SCHEMAS", "Delivery", "HeadEndWriter", "MixedWriter", "get_writer"]
