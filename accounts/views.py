"""The web pages' session login (and the admin's), behind the limits of the token endpoints: per
client address (imchat/throttling.py) and per username with backoff (accounts/throttling.py)."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import services
from imchat import throttling
from imchat.errors import AppError, Code


class ThrottledLogin:
    """AuthenticationForm.clean through services.user_authenticate; `retry_after` set when refused
    for trying too often."""

    retry_after: int | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            try:
                if self.request is not None:  # a form made without a request has no address to count
                    throttling.check(self.request, throttling.LoginThrottle)
                self.user_cache = services.user_authenticate(username=username, password=password,
                                                             request=self.request)
            except AppError as error:
                if error.code != Code.RATE_LIMITED:
                    raise self.get_invalid_login_error() from None
                self.retry_after = error.retry_after
                raise ValidationError(error.msg, code="throttled") from None
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class LoginForm(ThrottledLogin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledLogin, AdminAuthenticationForm):
    pass


class LoginView(auth_views.LoginView):
    """Django's LoginView; a throttled attempt answers 429 with Retry-After and says how long to wait."""

    form_class = LoginForm

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.retry_after:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response
