from django.contrib import admin
from django.urls import path, re_path
from django.views.generic import TemplateView

from accounts import compat as account_compat
from chat import apis as chat_apis
from chat import compat as chat_compat

# Compat paths match with or without a trailing slash and never redirect (CORS preflights).
urlpatterns = [
    re_path(r"^login/?$", account_compat.login, name="compat-login"),
    re_path(r"^login/register/?$", account_compat.register, name="compat-register"),
    re_path(r"^user/index/?$", chat_compat.user_index, name="compat-user-index"),
    re_path(r"^user/chatRecently/?$", chat_compat.chat_recently, name="compat-chat-recently"),
    re_path(r"^user/getChatRecord/?$", chat_compat.chat_record, name="compat-chat-record"),
    path("api/v1/groups/", chat_apis.GroupListApi.as_view(), name="api-groups"),
    path("api/v1/groups/<int:group_id>/", chat_apis.GroupApi.as_view(), name="api-group"),
    path("api/v1/groups/<int:group_id>/members/", chat_apis.GroupMembersApi.as_view(), name="api-group-members"),
    path("api/v1/groups/<int:group_id>/members/<int:uid>/", chat_apis.GroupMemberApi.as_view(),
         name="api-group-member"),
    re_path(r"^admin/", admin.site.urls),
    re_path(r"^$", TemplateView.as_view(template_name="home.html"), name="home"),
]
