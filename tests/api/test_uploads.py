"""Image uploads: compat `user/upload` and /api/v1/uploads/ accept real images only."""

import io
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageDraw, ImageFile, ImageSequence, PngImagePlugin

from imchat import images
from imchat.uploads import image_store
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


def test_an_image_over_the_budget_is_refused_from_its_header_before_any_pixel_is_decoded(alice, api, monkeypatch,
                                                                                       media_root):
    # given: 7000x7000 (49 megapixels, 188 MB of RSS to decode as RGB) declared in 1.5 KB
    bomb = png_declaring(7000, 7000)
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.size) or load(image))

    # when
    response = upload(api(alice), bomb, "big.png")
    compat = upload(compat_client(alice), bomb, "big.png", path="/user/upload")

    # then
    assert response.status_code == 400 and response.json()["msg"] == "file: image larger than 16000000 pixels"
    assert compat.json() == {"code": 1, "msg": "file: image larger than 16000000 pixels", "data": {}}
    assert decoded == []
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


# --- What is stored is Pillow's re-encoding ------------------------------------------------------

PAYLOAD = b"<html><script>alert(document.cookie)</script></html>"


def frames(count: int, size=(48, 32)) -> list[Image.Image]:
    """Frames that differ (a writer merges equal ones), with a transparent corner."""
    made = []
    for index in range(count):
        frame = Image.new("RGBA", size, (250, 250, 250, 255))
        draw = ImageDraw.Draw(frame)
        draw.rectangle([index * 6, 4, index * 6 + 12, 20], fill=(200, 40 * index % 255, 90, 255))
        draw.rectangle([0, 0, 5, 5], fill=(0, 0, 0, 0))
        made.append(frame)
    return made


def animated(image_format: str, count: int = 4) -> bytes:
    """An animation carrying a text chunk or comment of its format, and a trailing HTML payload."""
    made, out = frames(count), io.BytesIO()
    durations = [100 + 10 * index for index in range(count)]
    extra = {"GIF": {"comment": b"SECRET-COMMENT"},
             "PNG": {"pnginfo": png_text("SECRET-TEXT-CHUNK")},
             "WEBP": {"xmp": b"<x:xmpmeta>SECRET-XMP</x:xmpmeta>", "lossless": True}}[image_format]
    if image_format == "GIF":
        made = [frame.convert("P") for frame in made]
    if count > 1:
        extra.update(save_all=True, append_images=made[1:], duration=durations, loop=0)
    made[0].save(out, image_format, **extra)
    return out.getvalue() + PAYLOAD


def png_text(text: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    info.add_itxt("Description", text, zip=True)
    return info


def stored_bytes(media_root, src: str) -> bytes:
    return (media_root / src.split("/media/", 1)[1]).read_bytes()


@pytest.mark.parametrize("image_format, count", [("GIF", 4), ("PNG", 4), ("WEBP", 4), ("PNG", 1), ("GIF", 1)])
def test_stored_images_are_pillows_re_encoding_not_the_bytes_sent_animations_included(alice, api, media_root,
                                                                                     image_format, count):
    # given
    sent = animated(image_format, count)
    assert PAYLOAD in sent and b"SECRET" in sent

    # when
    reply = upload(api(alice), sent, "sticker")

    # then
    assert reply.status_code == 201, reply.content
    stored = stored_bytes(media_root, reply.json()["result"]["src"])
    assert b"<script" not in stored and b"<html" not in stored and b"SECRET" not in stored
    image = Image.open(io.BytesIO(stored))
    assert image.format == image_format and getattr(image, "n_frames", 1) == count
    if count > 1:
        shown = [(frame.load(), frame.info.get("duration"))[1] for frame in ImageSequence.Iterator(image)]
        assert shown == [100, 110, 120, 130]


def test_a_re_encoded_animation_shows_the_same_frames(alice, api, media_root):
    sent = animated("PNG", 4)

    src = upload(api(alice), sent, "sticker.png").json()["result"]["src"]

    def visible(data: bytes) -> list[bytes]:
        return [frame.convert("RGBA").tobytes() for frame in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]

    assert visible(stored_bytes(media_root, src)) == visible(sent)


def test_a_jpeg_keeps_its_orientation_tag_and_nothing_else_of_its_exif(alice, api, media_root):
    # given: a portrait photo as phones store it, landscape pixels and orientation 6 (turn right)
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N"}  # GPS
    exif[0x0112] = 6  # Orientation
    photo = picture("JPEG", size=(40, 30), exif=exif.tobytes())

    # when
    result = upload(api(alice), photo, "me.jpg", "image/jpeg").json()["result"]

    # then: the pixels are not turned (that would take a second copy of them); the tag still says how
    stored = Image.open(io.BytesIO(stored_bytes(media_root, result["src"])))
    assert (result["width"], result["height"]) == stored.size == (40, 30)
    assert dict(stored.getexif()) == {0x0112: 6}


# --- Memory: what an image may cost is known from its header -------------------------------------


def test_a_progressive_jpeg_gets_fewer_pixels_than_a_baseline_one(alice, api, settings):
    # libjpeg holds a progressive image's coefficients whole: 10 bytes a pixel instead of 4
    settings.IM_MAX_IMAGE_PIXELS = 100_000

    baseline = upload(api(alice), picture("JPEG", size=(300, 300)), "a.jpg", "image/jpeg")
    progressive = upload(api(alice), picture("JPEG", size=(300, 300), progressive=True), "b.jpg", "image/jpeg")

    assert baseline.status_code == 201
    assert progressive.status_code == 400 and progressive.json()["msg"] == "file: image larger than 40000 pixels"


def test_a_jpeg_whose_first_scan_lacks_a_component_counts_as_progressive():
    # given: a baseline JPEG whose first scan holds one of three components (libjpeg then buffers)
    data = bytearray(picture("JPEG", size=(8, 8)))
    sos = data.index(b"\xff\xda")
    data[sos + 4] = 1

    # then
    assert images._first_scan_components(bytes(data)) == 1
    assert images._first_scan_components(picture("JPEG", size=(8, 8))) == 3


def test_a_webp_with_transparency_gets_fewer_pixels_still(alice, api, settings):
    settings.IM_MAX_IMAGE_PIXELS = 100_000
    opaque, clear = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (120, 120), (9, 9, 9)).save(opaque, "WEBP")
    Image.new("RGBA", (120, 120), (9, 9, 9, 100)).save(clear, "WEBP")

    assert upload(api(alice), opaque.getvalue(), "a.webp").status_code == 201
    refused = upload(api(alice), clear.getvalue(), "b.webp")
    assert refused.status_code == 400 and refused.json()["msg"] == "file: image larger than 7142 pixels"


def test_every_frame_of_an_animation_counts_against_the_budget(alice, api, settings):
    # given: a budget of 400 kB; one 100x100 frame fits, twenty of them do not
    settings.IM_MAX_IMAGE_PIXELS = 100_000
    made, out = frames(20, size=(100, 100)), io.BytesIO()
    made[0].save(out, "PNG", save_all=True, append_images=made[1:])

    # when
    response = upload(api(alice), out.getvalue(), "long.png")

    # then
    assert response.status_code == 400
    assert response.json()["msg"] == "file: animation too large (20 frames of 100x100 pixels)"
    assert upload(api(alice), animated("PNG", 3), "short.png").status_code == 201


MEASURE = """
import sys
import django
django.setup()
from django.core.files.uploadedfile import SimpleUploadedFile
from imchat.uploads import image_store

def status(field):  # kB; VmHWM is this process's peak (getrusage's maxrss counts the parent's too)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

data = open(sys.argv[1], "rb").read()
before = status("VmRSS")
try:
    image_store(upload=SimpleUploadedFile("image", data))
    outcome = "stored"
except Exception as error:
    outcome = "refused: " + getattr(error, "msg", repr(error))
print((status("VmHWM") - before) * 1024, outcome)
"""


def budget_cases() -> list:
    def png(size, mode):
        out = io.BytesIO()
        image = Image.new(mode, size)
        ImageDraw.Draw(image).line([(0, 0), size], fill=(200, 90, 30, 255)[:len(mode)], width=9)
        image.save(out, "PNG", compress_level=1)
        return out.getvalue()

    def jpeg(size, **save):
        out = io.BytesIO()
        image = Image.new("RGB", size, (120, 30, 60))
        ImageDraw.Draw(image).line([(0, 0), size], fill=(20, 200, 30), width=9)
        image.save(out, "JPEG", **save)
        return out.getvalue()

    def noisy_webp(side):  # noise is what costs libwebp's encoder most
        out = io.BytesIO()
        image = Image.merge("RGBA", [Image.effect_noise((side, side), 80 + band) for band in range(4)])
        image.save(out, "WEBP", quality=100)
        return out.getvalue()

    turned = Image.Exif()
    turned[0x0112] = 6
    return [
        pytest.param(lambda: png_declaring(7000, 7000), "refused", id="49-megapixel PNG"),
        pytest.param(lambda: png((4000, 4000), "RGBA"), "stored", id="16-megapixel RGBA PNG"),
        pytest.param(lambda: jpeg((4000, 4000), exif=turned.tobytes()), "stored", id="16-megapixel JPEG, turned"),
        pytest.param(lambda: jpeg((2529, 2529), progressive=True, subsampling=0), "stored",
                     id="progressive JPEG at its limit"),
        pytest.param(lambda: noisy_webp(1069), "stored", id="WebP with transparency at its limit"),
    ]


@pytest.mark.parametrize("make, outcome", budget_cases())
def test_checking_an_image_at_the_limit_takes_well_under_100_mb(tmp_path, make, outcome):
    # given: an image made here, measured in a fresh process (peak RSS over what it had before)
    path = tmp_path / "image"
    path.write_bytes(make())

    # when
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2],
                          env={"DJANGO_SETTINGS_MODULE": "imchat.settings", "PATH": "/usr/bin:/bin",
                               "IM_VAR_DIR": str(tmp_path), "DJANGO_DEBUG": "1"})

    # then
    assert done.returncode == 0, done.stderr[-3000:]
    grown, result = done.stdout.split(maxsplit=1)
    assert result.startswith(outcome), result
    assert int(grown) < 80 * 2**20, f"{int(grown) / 2**20:.0f} MiB"


# --- Throttled per user, and a few decoded at once -----------------------------------------------


def test_uploads_are_throttled_per_user_on_both_endpoints(alice, bob, api, rates):
    # given
    rates(upload="3/minute")

    # when: three uploads by alice, over both endpoints, then a fourth on each
    assert upload(api(alice), picture("PNG")).status_code == 201
    assert upload(compat_client(alice), picture("PNG"), path="/user/upload").json()["code"] == 0
    assert upload(api(alice), picture("PNG")).status_code == 201
    rest = upload(api(alice), picture("PNG"))
    compat = upload(compat_client(alice), picture("PNG"), path="/user/upload")

    # then
    wait = int(rest["Retry-After"])
    assert 1 <= wait <= 60
    assert rest.status_code == 429
    assert rest.json() == {"code": -429, "msg": f"too many requests, try again in {wait} s",
                           "result": {"retry_after": wait}}
    assert compat.status_code == 200 and compat["Retry-After"] == str(wait)
    assert compat.json() == {"code": 1, "msg": f"too many requests, try again in {wait} s", "data": {}}
    assert upload(api(bob), picture("PNG")).status_code == 201


def test_while_every_decoding_slot_is_taken_an_upload_waits_then_is_refused_as_busy(alice, api, settings,
                                                                                     monkeypatch):
    # given: one slot, held by another upload
    settings.IM_UPLOAD_CONCURRENCY = 1
    monkeypatch.setattr(images, "SLOT_WAIT_SECONDS", 0.2)
    slot = images._slots(1)
    slot.acquire()
    try:
        # when
        busy = upload(api(alice), picture("PNG"))
        compat = upload(compat_client(alice), picture("PNG"), path="/user/upload")
    finally:
        slot.release()

    # then
    assert busy.status_code == 429 and busy["Retry-After"] == "5"
    assert busy.json()["msg"] == "file: the server is busy with other images, try again in 5 s"
    assert compat.json()["code"] == 1 and compat["Retry-After"] == "5"
    assert upload(api(alice), picture("PNG")).status_code == 201


def test_no_more_images_are_decoded_at_once_than_the_setting_allows(settings, monkeypatch, media_root):
    # given: six uploads at once, each decode held a moment
    settings.IM_UPLOAD_CONCURRENCY = 2
    reencode, lock, running, most = images.image_reencoded, threading.Lock(), [0], [0]

    def slow_reencode(image):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.1)
        try:
            return reencode(image)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(images, "image_reencoded", slow_reencode)
    done = []

    def store():
        done.append(image_store(upload=SimpleUploadedFile("a.png", picture("PNG"), "image/png")))

    # when
    workers = [threading.Thread(target=store) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)

    # then
    assert len(done) == 6 and most[0] == 2
