"""Nova's dynamic vendordata (vendordata2): an instance enrolled at boot, answered with its token and where the API is."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request

from ..deps import instances, nova
from ..schemas import VendordataIn
from ..services import InstanceService

__all__ = ["router"]

router = APIRouter()


@router.post("/v1.1/vendordata", summary="enroll an instance (Nova's DynamicJSON vendordata provider)")
def vendordata(request: Request, body: VendordataIn = Body(...), _: None = Depends(nova),
               service: InstanceService = Depends(instances)):  # fmt: skip
    token = service.enroll(body.project_id, body.instance_id)
    settings = request.app.state.vendordata
    # Nova publishes this under the target's name in openstack/latest/vendor_data2.json.
    return {
        "api_url": settings["api_url"] or str(request.base_url).rstrip("/"),
        "token": token,
        "project": body.project_id,
        "instance_id": body.instance_id,
        "ca": settings["ca_pem"],
    }
