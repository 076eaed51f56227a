"""`GET /v1/device-types`: the catalogue, as users of the API need it."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AuthDep, CatalogueDep
from api.models import DeviceTypeOut, DeviceTypes, FieldDescription
from api.problems import COMMON_ERRORS

router = APIRouter(prefix="/v1", tags=["catalogue"], dependencies=[AuthDep])


@router.get("/device-types", response_model=DeviceTypes, responses=COMMON_ERRORS)
async def device_types(catalogue: CatalogueDep) -> DeviceTypes:
    """Every device type: description, payload layout, and its fields with units and ranges."""
    return DeviceTypes(
        types=[
            DeviceTypeOut(
                name=t.name,
                description=t.description,
                layout=t.layout.source,
                payload_length=t.payload_length,
                fields=[
                    FieldDescription(
                        name=f.name,
                        unit=f.unit,
                        description=f.description,
                        type=f.storage,
                        scale=f.scale,
                        min=f.minimum,
                        max=f.maximum,
                    )
                    for f in t.fields.values()
                ],
            )
            for t in catalogue
        ]
    )
