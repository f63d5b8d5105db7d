"""os-instances: register, list and deregister instances (registration changes who reaches what)."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..auth import Principal
from ..deps import INSTANCE, TENANT, instances, last_seen, principal
from ..schemas import InstanceBody
from ..services import InstanceService

__all__ = ["router"]

router = APIRouter(prefix="/v1.1/{tenant}/os-instances")


@router.get("", summary="list registered instances")
def list_instances(request: Request, tenant: str = TENANT, who: Principal = Depends(principal),
                   service: InstanceService = Depends(instances)):  # fmt: skip
    return {"instances": last_seen(request).merge(service.list_instances(who, tenant))}


@router.put("/{instance_id}", status_code=201, summary="register an instance")
def put_instance(tenant: str = TENANT, instance_id: str = INSTANCE, body: Optional[InstanceBody] = Body(None),
                 who: Principal = Depends(principal), service: InstanceService = Depends(instances)):  # fmt: skip
    code, instance = service.put_instance(who, tenant, instance_id, (body or InstanceBody()).instance)
    return JSONResponse({"instance": instance}, status_code=code)


@router.delete("/{instance_id}", status_code=202, summary="deregister an instance")
def delete_instance(tenant: str = TENANT, instance_id: str = INSTANCE, who: Principal = Depends(principal),
                    service: InstanceService = Depends(instances)):  # fmt: skip
    service.delete_instance(who, tenant, instance_id)
    return Response(status_code=202)
