from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import User
from accounts.views import AdminLoginForm

# The admin's login counts against the same limits as every other login.
admin.site.login_form = AdminLoginForm


@admin.register(User)
class IMUserAdmin(UserAdmin):
    list_display = ("id", "username", "nickname", "is_staff", "is_active", "last_login")
    search_fields = ("username", "nickname", "=id")
    fieldsets = (*UserAdmin.fieldsets, ("Chat profile", {"fields": ("nickname", "avatar", "sign")}))
