"""Image uploads: the compat `user/upload` and `/api/v1/uploads/`.

An upload is accepted only if Pillow decodes it as PNG, JPEG, GIF or WebP (the file name and the
declared type are ignored), within IM_MAX_UPLOAD_BYTES and the memory budget of imchat/images.py
(refused from the header before any pixel is decoded). What is stored is Pillow's re-encoding, never
the bytes sent. Uploads are throttled per user (IM_UPLOAD_RATE). Files go through Django's default
storage (MEDIA_ROOT, or S3-compatible storage with IM_STORAGE_BACKEND) under an unguessable name, and
the reply carries an absolute URL.
"""

import logging
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.static import serve
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.views import APIView

from imchat import images, throttling
from imchat.api import ok
from imchat.compat_http import NOT_LOGGED_IN, request_user, with_retry_after
from imchat.errors import AppError, bad_request
from imchat.links import absolute_url, base_url_from_request
from imchat.openapi import api

logger = logging.getLogger(__name__)

EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
# Multipart framing around the file; a body larger than the limit plus this is refused unread.
MULTIPART_SLACK = 64 * 1024
NOT_AN_IMAGE = images.NOT_AN_IMAGE


@dataclass(frozen=True)
class StoredImage:
    name: str
    url: str
    format: str
    width: int
    height: int
    size: int

    def as_result(self, base_url: str) -> dict:
        return {"src": absolute_url(self.url, base_url), "format": self.format.lower(), "width": self.width,
                "height": self.height, "size": self.size}


def _too_large() -> AppError:
    return bad_request(f"file: larger than {settings.IM_MAX_UPLOAD_BYTES} bytes")


def refuse_oversized_body(request: HttpRequest) -> None:
    """Refuse from Content-Length alone, before the body is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.IM_MAX_UPLOAD_BYTES + MULTIPART_SLACK:
        raise _too_large()


# The storage name image_store gives a file, as it appears at the end of the file's URL.
_STORED_NAME = re.compile(r"(uploads/\d{4}/\d{2}/[A-Za-z0-9_-]{16,40}\.(?:" + "|".join(EXTENSIONS.values()) + r"))$")


def stored_image_name(url: str) -> str | None:
    """The storage name of an image this server stored (image_store), from its URL; None otherwise."""
    match = _STORED_NAME.search(url.split("?", 1)[0])
    return match.group(1) if match else None


def image_store(*, upload) -> StoredImage:
    """Check, clean and store one uploaded image; AppError (code 0) with the reason when refused."""
    if upload is None or not hasattr(upload, "read"):
        raise bad_request("file: required (a multipart form field named `file`)")
    limit = settings.IM_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise _too_large()
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise _too_large()
    if not data:
        raise bad_request("file: empty")
    with images.image_open(data) as image, images.decoding_slot():
        image_format, (width, height) = image.format, image.size
        content = images.image_reencoded(image)
    today = timezone.now()
    name = f"uploads/{today:%Y/%m}/{secrets.token_urlsafe(18)}.{EXTENSIONS[image_format]}"
    name = default_storage.save(name, ContentFile(content))
    return StoredImage(name=name, url=default_storage.url(name), format=image_format, width=width, height=height,
                       size=len(content))


# --- Entry points ------------------------------------------------------------------------------------


@csrf_exempt
def compat_upload(request: HttpRequest) -> HttpResponse:
    """`user/upload` in the original's shape: code 0 = success with data.src; code 1 = refused."""

    def refused(msg: str) -> JsonResponse:
        return JsonResponse({"code": 1, "msg": msg, "data": {}}, json_dumps_params={"ensure_ascii": False})

    if request.method == "OPTIONS":
        return HttpResponse()
    if request.method != "POST":
        return refused("POST only")
    user = request_user(request)
    if user is None:
        return JsonResponse(NOT_LOGGED_IN)
    request.user = user  # the token's user, as DRF does: the throttle counts per user
    try:
        throttling.check(request, throttling.UploadThrottle)
        refuse_oversized_body(request)
        stored = image_store(upload=request.FILES.get("file"))
    except AppError as error:
        return with_retry_after(refused(error.msg), error)
    except (MultiPartParserError, SuspiciousOperation):
        return refused("file: a malformed multipart body")
    except Exception:
        logger.exception("upload failed")
        return refused("server error")
    src = absolute_url(stored.url, base_url_from_request(request))
    return JsonResponse({"code": 0, "msg": "", "data": {"src": src}})


class UploadApi(APIView):
    """Upload an image (multipart field `file`): its absolute URL, to send as a msg_type 2 message."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [throttling.UploadThrottle]

    class UploadInputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="PNG, JPEG, GIF or WebP (decoded to check); at most "
                                               "IM_MAX_UPLOAD_BYTES")

    class UploadOutputSerializer(serializers.Serializer):
        src = serializers.URLField()
        format = serializers.ChoiceField(choices=["png", "jpeg", "gif", "webp"])
        width = serializers.IntegerField()
        height = serializers.IntegerField()
        size = serializers.IntegerField(help_text="bytes stored")

    @api(name="UploadCreate", result=UploadOutputSerializer, status=201,
         request={"multipart/form-data": UploadInputSerializer}, errors=(400, 401), tags=["uploads"])
    def post(self, request):
        refuse_oversized_body(request)
        stored = image_store(upload=request.FILES.get("file"))
        return ok(stored.as_result(base_url_from_request(request)), 201)


def media(request: HttpRequest, path: str) -> HttpResponse:
    """MEDIA_URL from MEDIA_ROOT (one host; in production nginx or a CDN serves it instead)."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)
