"""Small real images and archives built in memory for import tests."""

import io
import zipfile

from PIL import Image


def png_bytes(shade=0, size=(16, 16), fmt="PNG"):
    buffer = io.BytesIO()
    Image.new("L", size, color=shade).save(buffer, format=fmt)
    return buffer.getvalue()


def zip_bytes(entries):
    """entries: {name: bytes}; a name is written verbatim, even '/abs.png' or '../x.png'."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()
