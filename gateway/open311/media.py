"""The public picture of a service request (``media_url``): a small thumbnail of the case's
first photo, re-encoded from its pixels alone, so nothing of the original file's metadata —
EXIF (the camera, the time, the GPS position), XMP, comments, colour profiles — leaves the node.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from fengqiao.errors import InvalidArgument
from fengqiao.v1 import case_pb2 as pb

MAX_SIDE = 480  # pixels: enough to see the matter, too few for faces and papers to be read
MAX_PIXELS = 60_000_000  # a decompression bomb is refused before it is decoded
IMAGE_TYPES = ("image/jpeg", "image/png")


def photos(case: pb.Case) -> list[str]:
    """The case's pictures in order: its attachments, then the current 反馈单's photos (never
    the parties' signed statements)."""
    return [*case.attachments, *case.feedback.photos]


def thumbnail(content: bytes) -> bytes:
    """A JPEG of at most ``MAX_SIDE`` pixels a side, upright, with no metadata (pure)."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InvalidArgument("media", "图片像素过多，无法生成缩略图")
            image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at a reduced scale
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidArgument("media", "附件不是可识别的图片") from exc
    upright.thumbnail((MAX_SIDE, MAX_SIDE))
    clean = Image.new("RGB", upright.size)  # a fresh image: no info, EXIF or profile carried over
    clean.paste(upright)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()
