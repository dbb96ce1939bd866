"""Who may do what in an admin page, said once: records of what happened are read-only, and the
mall-wide ones are for superusers only. Mixed in before the ModelAdmin class."""


class ReadOnly:
    """Shown, never added, changed or deleted through the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SuperusersOnly:
    """Listed and shown to active superusers alone (mall-wide records: no merchant's business)."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser
