"""Image uploads: compat `user/upload` and /api/v1/uploads/ accept real images only."""

import io
import re
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from tests import factories

pytestmark = pytest.mark.django_db
UPLOAD_NAME = re.compile(r"^http://testserver/media/uploads/\d{4}/\d{2}/[A-Za-z0-9_-]{24}\.(png|jpg|gif|webp)$")


def picture(image_format: str = "PNG", size: tuple[int, int] = (40, 30), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, format=image_format, **save)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny but valid PNG header claiming a huge 1-bit image (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\x00" * (1 + (width + 7) // 8) * 64, 9)  # the first rows only: it is never decoded
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def upload(client, data: bytes, name: str = "photo.png", content_type: str = "image/png", path="/api/v1/uploads/"):
    return client.post(path, {"file": SimpleUploadedFile(name, data, content_type=content_type)})


def compat_client(user) -> Client:
    return Client(HTTP_AUTHORIZATIONS=f"bear {factories.token_for(user)}")


def test_a_png_and_a_jpeg_are_stored_under_unguessable_names_and_served_back(alice, api):
    for data, name, image_format in ((picture("PNG"), "a.png", "png"), (picture("JPEG"), "b.jpeg", "jpeg")):
        response = upload(api(alice), data, name)

        assert response.status_code == 201, response.content
        result = response.json()["result"]
        assert UPLOAD_NAME.match(result["src"]), result["src"]
        assert (result["format"], result["width"], result["height"]) == (image_format, 40, 30)
        served = Client().get(result["src"].removeprefix("http://testserver"))
        assert served.status_code == 200
        assert Image.open(io.BytesIO(b"".join(served.streaming_content))).size == (40, 30)


def test_the_compat_upload_answers_in_the_originals_shape_with_and_without_a_slash(alice):
    for path in ("/user/upload", "/user/upload/"):
        response = upload(compat_client(alice), picture("PNG"), path=path)

        assert response.status_code == 200
        body = response.json()
        assert (body["code"], body["msg"]) == (0, "") and UPLOAD_NAME.match(body["data"]["src"])


def test_the_compat_upload_refuses_with_code_1_and_the_reason(alice):
    response = upload(compat_client(alice), b"just some text, honest", "notes.png", path="/user/upload")

    assert response.status_code == 200
    assert response.json() == {"code": 1, "msg": "file: not an image (PNG, JPEG, GIF or WebP)", "data": {}}
    missing = compat_client(alice).post("/user/upload", {})
    assert missing.json()["code"] == 1 and missing.json()["msg"].startswith("file: required")


def test_the_compat_upload_needs_a_login(db):
    response = upload(Client(), picture("PNG"), path="/user/upload")

    assert response.json() == {"code": 401, "msg": "请登录", "result": None}


def test_a_text_file_named_png_is_refused(alice, api, media_root):
    response = upload(api(alice), b"<?php echo 'hi'; ?>", "shell.png")

    assert response.status_code == 400
    assert response.json() == {"code": 0, "msg": "file: not an image (PNG, JPEG, GIF or WebP)", "result": None}
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


def test_an_oversized_file_is_refused(alice, api, settings, media_root):
    settings.IM_MAX_UPLOAD_BYTES = 10_000
    big = picture("PNG", size=(400, 400), compress_level=0)
    assert len(big) > 10_000

    response = upload(api(alice), big)
    compat = upload(compat_client(alice), big, path="/user/upload")

    assert response.status_code == 400 and response.json()["msg"] == "file: larger than 10000 bytes"
    assert compat.json() == {"code": 1, "msg": "file: larger than 10000 bytes", "data": {}}
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


def test_a_decompression_bomb_is_refused_from_its_header(alice, api, media_root):
    bomb = png_declaring(20000, 20000)
    assert len(bomb) < 2000

    response = upload(api(alice), bomb, "bomb.png")
    compat = upload(compat_client(alice), bomb, "bomb.png", path="/user/upload")

    assert response.status_code == 400 and "pixels" in response.json()["msg"]
    assert compat.json()["code"] == 1 and "pixels" in compat.json()["msg"]
    assert not media_root.exists() or not any(media_root.rglob("*.*"))


def test_the_pixel_limit_is_a_setting(alice, api, settings):
    settings.IM_MAX_IMAGE_PIXELS = 1000

    response = upload(api(alice), picture("PNG", size=(40, 30)))

    assert response.status_code == 400 and response.json()["msg"] == "file: image larger than 1000 pixels"


def test_a_truncated_image_is_refused(alice, api):
    response = upload(api(alice), picture("PNG", size=(200, 200))[:300])

    assert response.status_code == 400 and response.json()["code"] == 0


def test_stored_images_are_re_encoded_without_metadata_or_trailing_bytes(alice, api, media_root):
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    photo = picture("JPEG", exif=exif.tobytes()) + b"<script>alert(1)</script>"

    src = upload(api(alice), photo, "me.jpg", "image/jpeg").json()["result"]["src"]

    stored = (media_root / src.split("/media/", 1)[1]).read_bytes()
    assert b"SecretCam" not in stored and b"<script>" not in stored
    assert Image.open(io.BytesIO(stored)).format == "JPEG"


def test_the_image_url_is_accepted_as_an_image_message(alice, bob, api):
    src = upload(api(alice), picture("PNG")).json()["result"]["src"]

    sent = api(alice).post("/api/v1/messages/", factories.send_content(bob.pk, src, msg_type=2), format="json")

    assert sent.status_code == 201


def test_uploads_need_a_login(db):
    from rest_framework.test import APIClient

    assert upload(APIClient(), picture("PNG")).status_code == 401


def test_a_malformed_multipart_body_is_refused_not_crashed_on(alice, api):
    body = b"--xyz\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n"  # never ends
    compat = compat_client(alice).post("/user/upload", body, content_type="multipart/form-data; boundary=xyz")
    rest = api(alice).post("/api/v1/uploads/", body, content_type="multipart/form-data; boundary=xyz")

    assert compat.status_code == 200 and compat.json()["code"] == 1
    assert rest.status_code == 400 and rest.json()["code"] == 0
