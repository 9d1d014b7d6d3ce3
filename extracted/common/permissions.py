"""Object permissions both services use: only the owner the row names may change it."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request


class IsOwner(permissions.BasePermission):
    """Writes only by the user whose id :meth:`owner_id` returns; reads by anyone."""

    message = "You do not own this resource."

    def owner_id(self, obj: Any) -> int | None:
        raise NotImplementedError

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return self.owner_id(obj) == request.user.pk
