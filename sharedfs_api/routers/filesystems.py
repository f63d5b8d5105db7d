"""os-filesystem: create, list, show and delete filesystems; connect and disconnect instances."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse, Response

from ..auth import Principal
from ..deps import INSTANCE, NAME, TENANT, filesystems, principal
from ..schemas import FsEntryBody
from ..services import FilesystemService

__all__ = ["router"]

router = APIRouter(prefix="/v1.1/{tenant}/os-filesystem")


@router.get("", summary="list filesystems (own and global)")
def list_filesystems(tenant: str = TENANT, who: Principal = Depends(principal),
                     service: FilesystemService = Depends(filesystems)):  # fmt: skip
    return {"fs_entries": service.list_fs(who, tenant)}


@router.put("/{name}", status_code=202, summary="create a filesystem (202 creating; 201 for a static export)")
def put_filesystem(tenant: str = TENANT, name: str = NAME, body: FsEntryBody = Body(...),
                   who: Principal = Depends(principal), service: FilesystemService = Depends(filesystems)):  # fmt: skip
    code, entry = service.put_fs(who, tenant, name, body.fs_entry)
    return JSONResponse({"fs_entry": entry}, status_code=code)


@router.get("/{name}", summary="show a filesystem")
def get_filesystem(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal),
                   service: FilesystemService = Depends(filesystems)):  # fmt: skip
    return {"fs_entry": service.get_fs(who, tenant, name)}


@router.delete("/{name}", status_code=202, summary="delete a filesystem")
def delete_filesystem(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal),
                      service: FilesystemService = Depends(filesystems)):  # fmt: skip
    return JSONResponse({"fs_entry": service.delete_fs(who, tenant, name)}, status_code=202)


@router.get("/{name}/instances", summary="instances and their mount state")
def filesystem_instances(tenant: str = TENANT, name: str = NAME, who: Principal = Depends(principal),
                         service: FilesystemService = Depends(filesystems)):  # fmt: skip
    return {"instances": service.fs_instances(who, tenant, name)}


@router.put("/{name}/instances/{instance_id}", status_code=201, summary="connect an instance")
def connect(tenant: str = TENANT, name: str = NAME, instance_id: str = INSTANCE,
            who: Principal = Depends(principal), service: FilesystemService = Depends(filesystems)):  # fmt: skip
    code, instance = service.connect(who, tenant, name, instance_id)
    return JSONResponse({"instance": instance}, status_code=code)


@router.delete("/{name}/instances/{instance_id}", status_code=202, summary="disconnect an instance")
def disconnect(tenant: str = TENANT, name: str = NAME, instance_id: str = INSTANCE,
               who: Principal = Depends(principal), service: FilesystemService = Depends(filesystems)):  # fmt: skip
    service.disconnect(who, tenant, name, instance_id)
    return Response(status_code=202)
