"""Image uploads: the compat `user/upload` and `/api/v1/uploads/`.

An upload is accepted only if Pillow decodes it as PNG, JPEG, GIF or WebP (the file name and the
declared type are ignored), within IM_MAX_UPLOAD_BYTES and IM_MAX_IMAGE_PIXELS (decompression
bombs are refused from the header, before any pixel is decoded). Still images are re-encoded (no
metadata, no trailing payload); animated ones are stored as sent once every frame decoded. Files go
through Django's default storage (MEDIA_ROOT, or S3-compatible storage with IM_STORAGE_BACKEND) under
an unguessable name, and the reply carries an absolute URL.
"""

import io
import logging
import secrets
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.static import serve
from PIL import Image, ImageOps, UnidentifiedImageError
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.views import APIView

from imchat.api import ok
from imchat.compat_http import NOT_LOGGED_IN, request_user
from imchat.errors import AppError, bad_request
from imchat.links import absolute_url, base_url_from_request
from imchat.openapi import api

logger = logging.getLogger(__name__)

EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "WEBP": "webp"}
MAX_FRAMES = 300
# Multipart framing around the file; a body larger than the limit plus this is refused unread.
MULTIPART_SLACK = 64 * 1024
NOT_AN_IMAGE = "file: not an image (PNG, JPEG, GIF or WebP)"


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


def _too_many_pixels() -> AppError:
    return bad_request(f"file: image larger than {settings.IM_MAX_IMAGE_PIXELS} pixels")


def refuse_oversized_body(request: HttpRequest) -> None:
    """Refuse from Content-Length alone, before the body is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.IM_MAX_UPLOAD_BYTES + MULTIPART_SLACK:
        raise _too_large()


def _decoded(data: bytes) -> Image.Image:
    """The image, fully decoded, or AppError saying why not."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(EXTENSIONS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels() from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise bad_request(NOT_AN_IMAGE) from None
        if image.width < 1 or image.height < 1:
            raise bad_request(NOT_AN_IMAGE)
        if image.width * image.height > settings.IM_MAX_IMAGE_PIXELS:
            raise _too_many_pixels()
        frames = getattr(image, "n_frames", 1)
        if frames > MAX_FRAMES or image.width * image.height * frames > settings.IM_MAX_IMAGE_PIXELS * 4:
            raise _too_many_pixels()
        try:
            for index in range(frames):
                image.seek(index)
                image.load()
            image.seek(0)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels() from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise bad_request("file: a damaged or truncated image") from None
    return image


def _reencoded(image: Image.Image) -> tuple[bytes, tuple[int, int]]:
    """The same picture without metadata or trailing bytes (EXIF orientation applied first), and its size."""
    image_format = image.format
    icc_profile = image.info.get("icc_profile")
    if image_format == "JPEG":
        image = ImageOps.exif_transpose(image)
    out = io.BytesIO()
    if image_format == "JPEG":
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=90, icc_profile=icc_profile)
    elif image_format == "PNG":
        params = {"transparency": image.info["transparency"]} if "transparency" in image.info else {}
        image.save(out, format="PNG", icc_profile=icc_profile, **params)
    elif image_format == "WEBP":
        image.save(out, format="WEBP", quality=90, icc_profile=icc_profile)
    else:
        params = {"transparency": image.info["transparency"]} if "transparency" in image.info else {}
        image.save(out, format="GIF", **params)
    return out.getvalue(), image.size


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
    image = _decoded(data)
    image_format = image.format
    animated = getattr(image, "n_frames", 1) > 1
    try:
        content, (width, height) = (data, image.size) if animated else _reencoded(image)
    except (OSError, ValueError) as error:
        logger.warning("could not re-encode an accepted %s: %s", image_format, error)
        raise bad_request("file: this image could not be processed") from None
    finally:
        image.close()
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
    if request_user(request) is None:
        return JsonResponse(NOT_LOGGED_IN)
    try:
        refuse_oversized_body(request)
        stored = image_store(upload=request.FILES.get("file"))
    except AppError as error:
        return refused(error.msg)
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
