"""Uploaded images, checked and re-encoded by Pillow within a memory budget.

What is stored is what Pillow wrote from the decoded pixels: no metadata, text chunks, comments or
trailing bytes survive (a JPEG or WebP keeps only its EXIF orientation; the ICC colour profile is
kept). Animated GIF, APNG and WebP are re-encoded frame by frame like stills rather than refused:
stickers are an ordinary part of chat, and Pillow's writers rebuild every frame from pixels.

Memory: one image may take IM_MAX_IMAGE_PIXELS x 4 bytes to check and re-encode (an RGBA picture of
that size: 64 MB at the default). What an upload would take is known from its header (`Image.open`
reads no pixels) and the peak bytes a pixel each kind takes, measured with Pillow 13 (noise, the
encoders' worst case, included):

- PNG, GIF, and a JPEG that libjpeg decodes row by row: the decoded image, 1-4 bytes a pixel (L, P:
  1; I;16: 2; RGB, RGBA, LA, CMYK, I: 4); their encoders stream rows (a JPEG keeps its own
  quantisation tables, so the stored file is about the size sent).
- A JPEG that libjpeg must hold whole (progressive, or a first scan without every component): 2 more
  bytes per colour component for its coefficients (10 for RGB).
- WebP: libwebp's decoder keeps two canvases and Pillow copies the frame through a bytes object, and
  its encoder works on copies of its own: up to 24 bytes a pixel, 50 with an alpha channel.
- An animation: a few canvases while frames are composited and compared, and the GIF and APNG
  writers hold every frame until the end.

Checking one image at its limit peaked at 47-66 MB over the process's RSS (PNG, JPEG, progressive
JPEG, WebP with alpha, animations); the stored file comes on top. At most IM_UPLOAD_CONCURRENCY images
are decoded at once per process; the others wait their turn.
"""

import functools
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from PIL import ExifTags, Image, UnidentifiedImageError

from imchat.errors import bad_request, rate_limited

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
NOT_AN_IMAGE = "file: not an image (PNG, JPEG, GIF or WebP)"
MAX_FRAMES = 300
BYTES_PER_PIXEL = 4  # the budget's unit: an RGBA pixel as Pillow holds it
# Peak bytes a pixel of one frame (see the module docstring), rounded up from what was measured.
STILL_COST = {"PNG": 4, "JPEG": 4, "GIF": 4, "WEBP": 26}
WEBP_ALPHA_COST = 56
JPEG_COEFFICIENT_COST = 2  # per colour component, when libjpeg holds the whole image's coefficients
# An animation: its canvases (the composited frame, the previous one, the writer's comparison
# copies) per canvas pixel, and what the writer keeps of every frame until the end.
ANIMATION_CANVAS_COST = {"PNG": 26, "GIF": 28, "WEBP": 40}
ANIMATION_FRAME_COST = {"PNG": 4.5, "GIF": 1.5, "WEBP": 1.5}
# How long an upload waits for a decoding slot before it is refused as busy.
SLOT_WAIT_SECONDS = 20
BUSY_RETRY_SECONDS = 5


def memory_budget() -> int:
    """Bytes one image may take to check and re-encode."""
    return settings.IM_MAX_IMAGE_PIXELS * BYTES_PER_PIXEL


def image_open(data: bytes) -> Image.Image:
    """The image with only its header read; refused when not an image or too costly to decode."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise bad_request(f"file: image larger than {settings.IM_MAX_IMAGE_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise bad_request(NOT_AN_IMAGE) from None
    try:
        _check_cost(image, data)
    except BaseException:
        image.close()
        raise
    return image


def _check_cost(image: Image.Image, data: bytes) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise bad_request(NOT_AN_IMAGE)
    try:
        frames = getattr(image, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, EOFError):
        raise bad_request("file: a damaged or truncated image") from None
    if frames > MAX_FRAMES:
        raise bad_request(f"file: an animation of more than {MAX_FRAMES} frames")
    budget = memory_budget()
    still = _still_cost(image, data)
    if width * height * still > budget:
        raise bad_request(f"file: image larger than {budget // still} pixels")
    if frames > 1:
        per_pixel = ANIMATION_CANVAS_COST[image.format] + frames * ANIMATION_FRAME_COST[image.format]
        if width * height * per_pixel > budget:
            raise bad_request(f"file: animation too large ({frames} frames of {width}x{height} pixels)")


def _still_cost(image: Image.Image, data: bytes) -> int:
    """Peak bytes a pixel of decoding and re-encoding one frame of this image."""
    if image.format == "WEBP":
        return WEBP_ALPHA_COST if image.mode == "RGBA" else STILL_COST["WEBP"]
    if image.format == "JPEG":
        components = len(image.getbands())
        if image.info.get("progressive") or _first_scan_components(data) < components:
            return STILL_COST["JPEG"] + JPEG_COEFFICIENT_COST * components
    return STILL_COST[image.format]


def _first_scan_components(data: bytes) -> int:
    """Colour components in a JPEG's first scan (0 if none is found): fewer than the image has means
    libjpeg buffers every coefficient of the image, as it does for a progressive one."""
    position = 2
    while position + 4 < len(data):
        if data[position] != 0xFF:
            return 0
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker == 0xDA:  # start of scan: length (2 bytes), then the number of components
            return data[position + 4]
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
        else:
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return 0


@functools.cache
def _slots(count: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(count)


@contextmanager
def decoding_slot() -> Iterator[None]:
    """One of IM_UPLOAD_CONCURRENCY slots of this process: each decode may take the whole budget."""
    slots = _slots(settings.IM_UPLOAD_CONCURRENCY)
    if not slots.acquire(timeout=SLOT_WAIT_SECONDS):
        raise rate_limited(BUSY_RETRY_SECONDS, "file: the server is busy with other images")
    try:
        yield
    finally:
        slots.release()


def image_reencoded(image: Image.Image) -> bytes:
    """The picture as Pillow writes it from the decoded pixels, every frame of an animation included."""
    frames = getattr(image, "n_frames", 1)
    try:
        durations = _decoded_frames(image, frames)
        out = io.BytesIO()
        image.save(out, format=image.format, **_save_params(image, frames, durations))
    except Image.DecompressionBombError:
        raise bad_request(f"file: image larger than {settings.IM_MAX_IMAGE_PIXELS} pixels") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise bad_request("file: a damaged or truncated image") from None
    return out.getvalue()


def _decoded_frames(image: Image.Image, frames: int) -> list[int]:
    """Decode every frame once (a damaged one refuses the upload); how long each is shown."""
    durations = []
    for index in range(frames):
        image.seek(index)
        image.load()
        durations.append(int(image.info.get("duration") or 0))
    image.seek(0)
    return durations


def _save_params(image: Image.Image, frames: int, durations: list[int]) -> dict:
    """Only what the picture needs: nothing of the upload's metadata is copied."""
    image_format = image.format
    params: dict = {}
    if image_format != "GIF" and image.info.get("icc_profile"):
        params["icc_profile"] = image.info["icc_profile"]
    if image_format in ("JPEG", "WEBP"):
        params["exif"] = _orientation_only(image)
    if image_format == "JPEG":
        # The upload's own tables: no second loss, about the size sent (a low-quality JPEG re-encoded
        # at a fixed quality grew 3.5x); a JPEG without tables (lossless) gets a fixed one.
        params["quality"] = "keep" if getattr(image, "quantization", None) else 90
    elif image_format == "WEBP":
        params.update(quality=90, method=0)  # libwebp's fastest method also takes the least memory
    if image_format in ("JPEG", "GIF"):
        params["comment"] = b""  # both writers copy the upload's comment unless told otherwise
    if "transparency" in image.info and frames == 1 and image_format in ("PNG", "GIF"):
        params["transparency"] = image.info["transparency"]
    if frames > 1:
        params.update(save_all=True, duration=durations)
        if image_format == "GIF" and _transparent(image):
            # Pillow hands over composited frames; drawn over the previous one, a frame could not
            # clear a pixel back to transparent, so each starts from the (transparent) background.
            params["disposal"] = 2
        if "loop" in image.info:
            params["loop"] = image.info["loop"]
    return params


def _transparent(image: Image.Image) -> bool:
    return "transparency" in image.info or image.mode in ("RGBA", "LA", "PA")


def _orientation_only(image: Image.Image) -> bytes:
    """An EXIF block holding the orientation alone: turning the pixels would take a second copy of
    them, and clients honoured this tag on the original server, which stored files as sent."""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    if orientation not in range(2, 9):
        return b""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif.tobytes()
