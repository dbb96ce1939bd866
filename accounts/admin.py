from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Erasure, User
from accounts.views import AdminLoginForm
from imchat.admin_access import ReadOnly, SuperusersOnly

# The admin's login counts against the same limits as every other login.
admin.site.login_form = AdminLoginForm


@admin.register(User)
class IMUserAdmin(UserAdmin):
    list_display = ("id", "username", "nickname", "is_staff", "is_active", "last_login")
    search_fields = ("username", "nickname", "=id")
    fieldsets = (*UserAdmin.fieldsets, ("Chat profile", {"fields": ("nickname", "avatar", "sign")}))


@admin.register(Erasure)
class ErasureAdmin(SuperusersOnly, ReadOnly, admin.ModelAdmin):
    """The audit lines of `manage.py eraseuser`: read-only, for superusers (they name who was erased)."""

    list_display = ("user_id", "erased_at", "by", "reason", "messages", "conversations", "files")
    search_fields = ("=user_id", "by", "reason")
