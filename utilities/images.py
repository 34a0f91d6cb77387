"""Which raster image a file is, from its first bytes.

Logos are served from the portal's own origin, so only formats a browser cannot
run script from are accepted: PNG, JPEG, GIF and WebP. SVG is refused for that
reason; a file's name or a server's Content-Type is never trusted.
"""

SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
ACCEPTED = "PNG, JPEG, GIF or WebP"


def image_type(data: bytes) -> str | None:
    """The MIME type of a PNG, JPEG, GIF or WebP image, or None for anything else."""
    for signature, mime in SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
