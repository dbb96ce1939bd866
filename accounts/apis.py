"""Accounts over HTTP: a token for a password, who I am, and the mall's bulk user sync."""

from django.conf import settings
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from accounts import mall, services
from imchat.api import ok
from imchat.inputs import body_of, validated
from imchat.links import absolute_url, base_url_from_request
from imchat.openapi import INT64_MAX, api
from imchat.throttling import LoginThrottle

MALL_BATCH = 1000


class TokenApi(APIView):
    """A JWT for a username and password (the same token the socket and the compat API take).
    Throttled per client address, and per username with backoff after failures."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    class TokenInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, style={"input_type": "password"})

    class TokenOutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expires_in = serializers.IntegerField(help_text="seconds")

    @api(name="TokenCreate", result=TokenOutputSerializer, request=TokenInputSerializer, errors=(400,), auth=[],
         tags=["auth"])
    def post(self, request):
        data = validated(self.TokenInputSerializer, body_of(request))
        token = services.user_login(username=data["username"], password=data["password"])
        return ok({"token": token, "expires_in": settings.IM_JWT_TTL})


class MeApi(APIView):
    """The logged-in user."""

    class MeOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        username = serializers.CharField()
        nickname = serializers.CharField()
        avatar = serializers.URLField()
        is_staff = serializers.BooleanField()
        is_superuser = serializers.BooleanField()

    @api(name="MeGet", result=MeOutputSerializer, errors=(401,), tags=["auth"])
    def get(self, request):
        user = request.user
        return ok({"id": user.pk, "username": user.username, "nickname": user.display_name,
                   "avatar": absolute_url(user.avatar, base_url_from_request(request)),
                   "is_staff": user.is_staff, "is_superuser": user.is_superuser})


class MallUserSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=INT64_MAX, help_text="the mall's user id")
    nickname = serializers.CharField(max_length=64, required=False, allow_blank=True)
    avatar = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                   help_text="an absolute URL, or a path under this server")


class MallUsersApi(APIView):
    """The mall creates or updates its users in bulk (idempotent upserts by id; only given fields change)."""

    authentication_classes = [mall.MallKeyAuthentication]
    permission_classes = [mall.IsMall]
    throttle_classes: list = []  # one trusted backend holding the key, syncing in bulk

    class MallUsersInputSerializer(serializers.Serializer):
        users = MallUserSerializer(many=True, min_length=1, max_length=MALL_BATCH)

    class MallUsersOutputSerializer(serializers.Serializer):
        created = serializers.ListField(child=serializers.IntegerField())
        updated = serializers.ListField(child=serializers.IntegerField())
        unchanged = serializers.ListField(child=serializers.IntegerField())

    @api(name="MallUsersUpsert", result=MallUsersOutputSerializer, request=MallUsersInputSerializer,
         errors=(400, 401, 403), tags=["mall"], throttled=False)
    def post(self, request):
        data = validated(self.MallUsersInputSerializer, body_of(request))
        return ok(mall.users_upsert(users=data["users"]))
