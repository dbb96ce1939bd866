"""DRF authentication with the same JWTs the sockets use."""

from rest_framework import authentication, exceptions

from accounts import services
from accounts.tokens import InvalidToken, token_from_header


class JWTAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.headers.get("Authorizations") or request.headers.get("Authorization")
        if not header:
            return None
        try:
            user = services.user_from_token(token_from_header(header))
        except InvalidToken as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        return user, None

    def authenticate_header(self, request):
        return "Bearer"
