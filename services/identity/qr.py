"""Printable QR codes (亮码) for a station wall: the QR symbol with the name under it, SVG or PNG."""

from __future__ import annotations

import io
import threading
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import manimgx_fonts_cjk
import segno
from PIL import Image, ImageDraw, ImageFont

from services.identity.codes import LabelLayout, ellipsize, fit_font_size, label_layout, svg_font_size, text_em

# Noto Sans CJK as shipped by the package: a collection of JP, KR, SC, TC and HK faces, each a
# variable font whose default instance is Thin, too faint to read from a printed sheet.
DEFAULT_FONT_FILE = Path(manimgx_fonts_cjk.__file__).with_name("NotoSansCJK-VF.otf.ttc")
PREFERRED_FACE = "Noto Sans CJK SC"
PREFERRED_WEIGHTS = (b"Bold", b"Medium", b"Regular")
SVG_FONT_FAMILY = ("'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'Source Han Sans CN', "
                   "'PingFang SC', 'Hiragino Sans GB', 'Microsoft YaHei', 'WenQuanYi Micro Hei', "
                   "SimHei, sans-serif")
QUIET_ZONE = 4

# FreeType faces are not safe to use from two threads at once; PNGs are drawn in worker threads.
_draw_lock = threading.Lock()


def symbol(url: str) -> segno.QRCode:
    """A full QR code (never Micro QR) at error correction M, raised to Q or H where that costs no
    extra size, so a scuffed or dirty sticker still scans."""
    return segno.make_qr(url, error="m", boost_error=True)


def _rows(qr: segno.QRCode) -> list[list[bool]]:
    return [[bool(m) for m in row] for row in qr.matrix_iter(scale=1, border=QUIET_ZONE)]


def _svg_path(rows: list[list[bool]]) -> str:
    """Runs of dark modules per row as horizontal strokes one module thick, in module units."""
    parts: list[str] = []
    for y, row in enumerate(rows):
        x = 0
        while x < len(row):
            if not row[x]:
                x += 1
                continue
            start = x
            while x < len(row) and row[x]:
                x += 1
            parts.append(f"M{start} {y + 0.5}h{x - start}")
    return "".join(parts)


def render_svg(url: str, name: str) -> bytes:
    qr = symbol(url)
    rows = _rows(qr)
    layout = label_layout(len(rows))
    size = svg_font_size(name, layout.text_max_width, largest=layout.font_largest, smallest=layout.font_smallest)

    # The viewer's font decides the real width; when the estimate says it will not fit even at the
    # smallest size, the text is squeezed to the band rather than cut.
    squeeze = (f' textLength="{layout.text_max_width}" lengthAdjust="spacingAndGlyphs"'
               if text_em(name) * size > layout.text_max_width else "")
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" height="{layout.height}" '
        f'viewBox="0 0 {layout.width} {layout.height}">'
        f'<rect width="{layout.width}" height="{layout.height}" fill="#fff"/>'
        f'<g transform="translate({layout.qr_offset} {layout.qr_offset}) scale({layout.scale})">'
        f'<path d="{_svg_path(rows)}" stroke="#000" stroke-width="1" fill="none" shape-rendering="crispEdges"/>'
        f'</g>'
        f'<text x="{layout.width / 2:g}" y="{layout.label_center_y:g}" font-size="{size:.1f}" '
        f'font-family={quoteattr(SVG_FONT_FAMILY)} font-weight="bold" text-anchor="middle" '
        f'dominant-baseline="central" fill="#000"{squeeze}>{escape(name)}</text>'
        f'<desc>{escape(url)}</desc>'
        '</svg>\n'
    )
    return svg.encode("utf-8")


@lru_cache(maxsize=4)
def _face_index(path: str) -> int:
    """The SC face of a collection (names render in Simplified Chinese glyph forms), else the first."""
    index = 0
    while True:
        try:
            font = ImageFont.truetype(path, 12, index=index)
        except OSError:
            return 0
        family, _ = font.getname()
        if family == PREFERRED_FACE or (family or "").endswith(" SC"):
            return index
        index += 1
        if index > 64:
            return 0


@lru_cache(maxsize=64)
def label_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The label font at `size`, loaded once per size (FreeType maps the file, it is not copied)."""
    font = ImageFont.truetype(path, size, index=_face_index(path))
    try:
        names = font.get_variation_names()
    except OSError:
        return font  # not a variable font: its one weight is what there is
    for weight in PREFERRED_WEIGHTS:
        if weight in names:
            font.set_variation_by_name(weight)
            break
    return font


def font_path(font_file: Path | None) -> str:
    return str(font_file or DEFAULT_FONT_FILE)


def _draw_png(url: str, name: str, font_file: str) -> bytes:
    qr = symbol(url)
    rows = _rows(qr)
    layout: LabelLayout = label_layout(len(rows))
    modules = Image.new("L", (layout.modules, layout.modules), 255)
    modules.putdata([0 if dark else 255 for row in rows for dark in row])
    qr_size = layout.modules * layout.scale
    image = Image.new("L", (layout.width, layout.height), 255)
    image.paste(modules.resize((qr_size, qr_size), Image.Resampling.NEAREST), (layout.qr_offset, layout.qr_offset))

    def width_at(size: int, text: str = name) -> float:
        return label_font(font_file, size).getlength(text)

    size = fit_font_size(width_at, layout.text_max_width, largest=layout.font_largest,
                         smallest=layout.font_smallest)
    text = ellipsize(name, lambda t: width_at(size, t) <= layout.text_max_width)
    draw = ImageDraw.Draw(image)
    draw.text((layout.width / 2, layout.label_center_y), text, font=label_font(font_file, size), fill=0,
              anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_png(url: str, name: str, font_file: Path | None = None) -> bytes:
    """A 600 px wide grayscale PNG; the name is shrunk to fit the band, and cut with "…" only when it
    does not fit even at the smallest size. Blocking: call it from a worker thread."""
    with _draw_lock:
        return _draw_png(url, name, font_path(font_file))
