"""The device catalogue (one data file per device type) and the payload codec they share.

- `codec`: layouts and the decode engine; `loader`: device types read from `catalogue/types`;
- `durations` and `times`: the one parser each for durations and times written as text.
"""

from catalogue.codec import CodecError, Layout, parse_layout
from catalogue.loader import Catalogue, CatalogueError, DeviceType, FieldSpec, load_catalogue

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CodecError",
    "DeviceType",
    "FieldSpec",
    "Layout",
    "load_catalogue",
    "parse_layout",
]
