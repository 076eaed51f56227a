"""The device catalogue (one data file per device type) and the payload codec they share.

- `codec`: layouts and the decode engine; `devicetype`: a device type's fields, status rules and
  decode plan, and the `Catalogue` of them; `loader`: device types read from `catalogue/types`
  (and an extra folder) and checked;
- `durations` and `times`: the one parser each for durations and times written as text.
"""

from catalogue.codec import CodecError, Layout, parse_layout
from catalogue.devicetype import Catalogue, DeviceType, FieldSpec
from catalogue.loader import CatalogueError, load_catalogue

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
