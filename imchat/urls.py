from django.contrib import admin
from django.urls import path, re_path

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
]

# The web pages (templates/ + static/js/imchat.js): session login, consumer chat, agent workspace,
# merchant dashboard, and the language switch.
from django.conf import settings  # noqa: E402
from django.contrib.auth import views as auth_views  # noqa: E402
from django.urls import include  # noqa: E402

from accounts import views as account_views  # noqa: E402
from chat import views as chat_views  # noqa: E402
from customer_service import views as service_views  # noqa: E402

urlpatterns += [
    path("accounts/login/", account_views.LoginView.as_view(
        redirect_authenticated_user=True, extra_context={"demo_hint": settings.DEBUG}), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(r"^$", service_views.home, name="home"),
    path("start/", service_views.start, name="start"),
    path("chat/", chat_views.chat_page, name="chat"),
    path("shops/", service_views.shop_directory, name="shop-directory"),
    path("workspace/", service_views.workspace, name="workspace"),
    path("workspace/state/", service_views.workspace_state, name="workspace-state"),
    path("workspace/customer/", service_views.workspace_customer, name="workspace-customer"),
    path("dashboard/", service_views.dashboard, name="dashboard"),
    path("dashboard/data/", service_views.dashboard_data, name="dashboard-data"),
    path("dashboard/reports/", service_views.dashboard_reports, name="dashboard-reports"),
    path("i18n/", include("django.conf.urls.i18n")),
]

# The REST API (/api/v1/, schema at /api/schema/, docs at /api/docs/), image uploads, MEDIA.
from django.conf import settings  # noqa: E402, F811
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView  # noqa: E402

from accounts import apis as account_apis  # noqa: E402
from customer_service import apis as service_apis  # noqa: E402
from imchat import uploads  # noqa: E402

urlpatterns += [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("api/v1/auth/token/", account_apis.TokenApi.as_view(), name="api-token"),
    path("api/v1/me/", account_apis.MeApi.as_view(), name="api-me"),
    path("api/v1/conversations/", chat_apis.ConversationListApi.as_view(), name="api-conversations"),
    path("api/v1/conversations/<str:chat_id>/read/", chat_apis.ConversationReadApi.as_view(),
         name="api-conversation-read"),
    path("api/v1/conversations/<str:chat_id>/hide/", chat_apis.ConversationHideApi.as_view(),
         name="api-conversation-hide"),
    path("api/v1/conversations/<str:chat_id>/messages/", chat_apis.ConversationMessagesApi.as_view(),
         name="api-conversation-messages"),
    path("api/v1/messages/", chat_apis.MessageSendApi.as_view(), name="api-messages"),
    path("api/v1/uploads/", uploads.UploadApi.as_view(), name="api-uploads"),
    path("api/v1/shops/", service_apis.ShopListApi.as_view(), name="api-shops"),
    path("api/v1/shops/<int:shop_id>/agents/", service_apis.ShopAgentListApi.as_view(), name="api-shop-agents"),
    path("api/v1/shops/<int:shop_id>/agents/<int:uid>/", service_apis.ShopAgentApi.as_view(),
         name="api-shop-agent"),
    path("api/v1/shops/<int:shop_id>/hours/", service_apis.ShopHoursApi.as_view(), name="api-shop-hours"),
    path("api/v1/notices/", service_apis.NoticeApi.as_view(), name="api-notices"),
    path("api/v1/ratings/", service_apis.RatingApi.as_view(), name="api-ratings"),
    path("api/v1/ratings/pending/", service_apis.PendingRatingListApi.as_view(), name="api-ratings-pending"),
    path("api/v1/shops/<int:shop_id>/ratings/", service_apis.ShopRatingListApi.as_view(), name="api-shop-ratings"),
    path("api/v1/search/messages/", service_apis.MessageSearchApi.as_view(), name="api-search-messages"),
    path("api/v1/mall/users/", account_apis.MallUsersApi.as_view(), name="api-mall-users"),
    path("api/v1/shops/<int:shop_id>/contact-guard/", service_apis.ShopContactGuardApi.as_view(),
         name="api-shop-contact-guard"),
    path("api/v1/shops/<int:shop_id>/offline-notify/", service_apis.ShopOfflineNotifyApi.as_view(),
         name="api-shop-offline-notify"),
    path("api/v1/shops/<int:shop_id>/flagged-messages/", service_apis.ShopFlaggedMessagesApi.as_view(),
         name="api-shop-flagged-messages"),
    path("api/v1/mall/shops/", service_apis.MallShopsApi.as_view(), name="api-mall-shops"),
    re_path(r"^user/upload/?$", uploads.compat_upload, name="compat-upload"),
]

# The customer-service desk: labels, canned replies, private notes (customer_service/desk_apis.py).
from customer_service import desk_apis  # noqa: E402
from customer_service import session_apis  # noqa: E402

urlpatterns += [
    path("api/v1/shops/<int:shop_id>/labels/", desk_apis.ShopLabelListApi.as_view(), name="api-shop-labels"),
    path("api/v1/shops/<int:shop_id>/labels/report/", desk_apis.LabelReportApi.as_view(),
         name="api-shop-label-report"),
    path("api/v1/shops/<int:shop_id>/labels/<int:label_id>/", desk_apis.ShopLabelApi.as_view(),
         name="api-shop-label"),
    path("api/v1/shops/<int:shop_id>/canned-replies/", desk_apis.CannedReplyListApi.as_view(),
         name="api-shop-canned-replies"),
    path("api/v1/shops/<int:shop_id>/canned-replies/<int:reply_id>/", desk_apis.CannedReplyApi.as_view(),
         name="api-shop-canned-reply"),
    path("api/v1/shops/<int:shop_id>/sessions/", session_apis.ShopSessionListApi.as_view(), name="api-shop-sessions"),
    path("api/v1/service-sessions/<int:session_id>/", session_apis.SessionApi.as_view(), name="api-session"),
    path("api/v1/service-sessions/<int:session_id>/transfer/", session_apis.SessionTransferApi.as_view(),
         name="api-session-transfer"),
    path("api/v1/service-sessions/<int:session_id>/close/", session_apis.SessionCloseApi.as_view(),
         name="api-session-close"),
    path("api/v1/service-sessions/<int:session_id>/notes/", desk_apis.SessionNoteListApi.as_view(),
         name="api-session-notes"),
    path("api/v1/service-sessions/<int:session_id>/labels/", desk_apis.SessionLabelsApi.as_view(),
         name="api-session-labels"),
]
# Reports over a date range, as JSON and as streamed CSV (customer_service/report_apis.py).
from customer_service import report_apis  # noqa: E402

urlpatterns += [
    path("api/v1/shops/<int:shop_id>/reports/daily/", report_apis.ShopDailyReportApi.as_view(),
         name="api-shop-report-daily"),
    path("api/v1/shops/<int:shop_id>/reports/daily/export/", report_apis.ShopDailyReportExportApi.as_view(),
         name="api-shop-report-daily-export"),
    path("api/v1/shops/<int:shop_id>/reports/agents/", report_apis.ShopAgentReportApi.as_view(),
         name="api-shop-report-agents"),
    path("api/v1/shops/<int:shop_id>/reports/agents/export/", report_apis.ShopAgentReportExportApi.as_view(),
         name="api-shop-report-agents-export"),
    path("api/v1/reports/shops/", report_apis.ShopsReportApi.as_view(), name="api-report-shops"),
    path("api/v1/reports/shops/export/", report_apis.ShopsReportExportApi.as_view(), name="api-report-shops-export"),
]
if settings.IM_SERVE_MEDIA:
    # Uploaded images from MEDIA_ROOT (one host; in production nginx or a CDN serves MEDIA_URL).
    urlpatterns += [re_path(r"^%s(?P<path>.+)$" % settings.MEDIA_URL.lstrip("/"), uploads.media, name="media")]
