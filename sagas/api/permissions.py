"""The API's roles, the same groups as the dashboard: operators, admins (staff), approvers."""

from rest_framework.permissions import BasePermission

from sagas.access import can_start, is_admin, is_operator


class IsOperator(BasePermission):
    message = "only operators may do this"

    def has_permission(self, request, view):
        return is_operator(request.user)


class CanStartSagas(BasePermission):
    message = "only operators (or accounts allowed to add sagas) may start sagas"

    def has_permission(self, request, view):
        return can_start(request.user)


class IsAdmin(BasePermission):
    message = "only admins may publish workflows"

    def has_permission(self, request, view):
        return is_admin(request.user)
