"""Attachments of citizens' reports (photos and voice recordings) without I/O.

`detect` decides what an upload is from its content; the file name and the client's Content-Type are never
consulted, since both are whatever the sender typed. Most types are told by their leading bytes; WebM and MP4 from a
browser's recorder (MediaRecorder) are also read for their tracks, so that a video is not taken for a voice note.
`strip_photo_metadata` re-encodes a photo so that nothing but its pixels leaves the phone: EXIF carries the GPS
position of the sender's home and the serial number of the device. Before a single pixel is decoded, the dimensions in
the header are held against `MAX_PIXELS` and against the size of the file (`check_decode`): a few hundred kilobytes
of PNG can claim tens of megapixels, and decoding is where the memory goes.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Literal

from filetype.types import audio as ft_audio
from filetype.types import image as ft_image
from PIL import ExifTags, Image, ImageCms

MAX_BYTES = 10 * 1024 * 1024
# A phone camera's default output stays below this (48 and 50 MP sensors bin to 12-12.5 MP); decoded, such a photo
# takes 4 bytes a pixel in Pillow's memory (RGB is stored padded), so 64 MB at most, twice that while it is turned
# upright. Above it, a few uploads at once would take an intake pod past its memory limit.
MAX_PIXELS = 16_000_000
# Decoded bytes a byte of file may turn into: a phone's JPEG decodes to 10-30 times its size, a screenshot's PNG to
# more, but a file that inflates hundreds of times is built to cost memory and CPU (a "decompression bomb"). Images
# that decode to at most `FREE_DECODE` bytes are cheap whatever their ratio (flat screenshots compress very well).
MAX_EXPANSION = 200
FREE_DECODE = 32 * 1024 * 1024
# What callers should read before calling `detect`: filetype's own convention, enough for every check here
# except an MP3 behind a long ID3 tag (see `_is_mp3`).
HEAD_BYTES = 261

Kind = Literal["photo", "voice"]


@dataclass(frozen=True)
class Detected:
    kind: Kind
    media_type: str
    extension: str


JPEG = Detected("photo", "image/jpeg", "jpg")
PNG = Detected("photo", "image/png", "png")
WEBP = Detected("photo", "image/webp", "webp")
AMR = Detected("voice", "audio/amr", "amr")
MP3 = Detected("voice", "audio/mpeg", "mp3")
M4A = Detected("voice", "audio/mp4", "m4a")
# filetype says audio/x-wav; browsers and RFC 2361's successors settled on audio/wav.
WAV = Detected("voice", "audio/wav", "wav")
OGG = Detected("voice", "audio/ogg", "ogg")
# What Chromium's MediaRecorder writes for a voice note: Opus (or Vorbis) in WebM.
WEBM = Detected("voice", "audio/webm", "webm")

ACCEPTED: tuple[Detected, ...] = (JPEG, PNG, WEBP, AMR, MP3, M4A, WAV, OGG, WEBM)

# filetype's matchers are used one by one rather than through `filetype.guess`: guess returns the first of ~80
# matchers in list order, so an animated PNG comes back as "apng" and an M4A with a generic major brand as video,
# and the answer would shift whenever the library reorders or adds matchers.
_FT_JPEG = ft_image.Jpeg()
_FT_WEBP = ft_image.Webp()
_FT_WAV = ft_audio.Wav()
_FT_OGG = ft_audio.Ogg()
_FT_AMR = ft_audio.Amr()

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# ISO BMFF major brands that promise audio only. Generic brands (isom, mp41, mp42, iso5 ...) say nothing about the
# tracks, and from the leading bytes alone an audio-only "mp42" file cannot be told apart from a video: such a file
# is taken only whole, when its `moov` box shows sound tracks and nothing else (Safari's MediaRecorder writes them).
_AUDIO_ONLY_BRANDS = frozenset({b"M4A ", b"M4B "})
_GENERIC_BRANDS = frozenset({b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
                             b"mp41", b"mp42"})

# EBML (RFC 8794) and Matroska (RFC 9559) element ids, with their length marker bits, as they are written.
_EBML_HEADER = 0x1A45DFA3
_EBML_DOC_TYPE = 0x4282
_EBML_VOID = 0xEC
_MKV_SEGMENT = 0x18538067
_MKV_TRACKS = 0x1654AE6B
_MKV_TRACK_ENTRY = 0xAE
_MKV_TRACK_TYPE = 0x83
_MKV_CODEC_ID = 0x86
_MKV_CLUSTER = 0x1F43B675
_MKV_TRACK_TYPE_VIDEO, _MKV_TRACK_TYPE_AUDIO = 1, 2
_WEBM_AUDIO_CODECS = frozenset({b"A_OPUS", b"A_VORBIS"})
# Boxes or elements walked at one level: a recorder writes a few hundred at most (one fragment a second), and the
# walk runs on the event loop, so ten megabytes of tiny empty boxes must not keep it busy.
_MAX_CHILDREN = 10_000

# Identification packets that open the first page of an Ogg stream carrying audio; Theora video, the Skeleton
# index and anything else are refused.
_OGG_AUDIO_CODECS = (b"OpusHead", b"\x01vorbis", b"Speex   ", b"\x7fFLAC")

# MPEG audio Layer III, in kbit/s, by bitrate index; index 0 (free format) and 15 (forbidden) stay None.
_MP3_BITRATES_V1 = (None, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, None)
_MP3_BITRATES_V2 = (None, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, None)
# Sample rates by version bits (0 = MPEG 2.5, 2 = MPEG 2, 3 = MPEG 1) and sample rate index.
_MP3_SAMPLE_RATES = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}


def detect(head: bytes) -> Detected | None:
    """What the upload is, from its first bytes (at least `HEAD_BYTES` when the file has them), or None if refused.

    Passing more than the head (up to the whole upload) makes the MP3 and WebM checks stricter (more frames and
    tracks are seen), and an MP4 with a generic brand is accepted only whole.
    """
    head = bytes(head)
    if _FT_JPEG.match(head):
        return JPEG
    # filetype's Png matcher checks "\x89PNG" only; the full signature also catches transfers that mangled
    # line endings, which no decoder would accept later.
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if _FT_WEBP.match(head):
        return WEBP
    if _is_amr(head):
        return AMR
    if _is_m4a(head):
        return M4A
    if _FT_WAV.match(head):
        return WAV
    if _is_ogg_audio(head):
        return OGG
    if _is_webm_audio(head):
        return WEBM
    if _is_mp3(head):
        return MP3
    return None


def _is_amr(head: bytes) -> bool:
    # filetype checks the "#!AMR\n" magic (so AMR-WB's "#!AMR-WB\n" is refused, as intended) but not what follows;
    # the first frame header must be "0 FT(4) Q 0 0" with FT a speech mode (0-7), SID (8) or NO_DATA (15).
    if not _FT_AMR.match(head):
        return False
    frame = head[6]
    frame_type = (frame >> 3) & 0x0F
    return frame & 0x83 == 0 and (frame_type <= 8 or frame_type == 15)


def _is_m4a(head: bytes) -> bool:
    # filetype's M4a matcher compares three bytes ("M4A" at offset 8) without the box size or the fourth brand
    # byte, and does not know audiobooks ("M4B "), which it reports as mp4 video. The ftyp box is read here:
    # u32 size, "ftyp", major brand, u32 minor version, then compatible brands of 4 bytes each.
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    (size,) = struct.unpack(">I", head[:4])
    if size < 16 or size % 4 or size > 4096:
        return False
    brand = head[8:12]
    if brand in _AUDIO_ONLY_BRANDS:
        return True
    return brand in _GENERIC_BRANDS and _sound_only_movie(head)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]] | None:
    """The ISO BMFF boxes that fill `data[start:end]` exactly, as (type, body start, body end); None when they do
    not: a box runs past the end, a size is impossible, or bytes are left over (so the data is not the whole)."""
    out: list[tuple[bytes, int, int]] = []
    at = start
    while at < end:
        if at + 8 > end or len(out) >= _MAX_CHILDREN:
            return None
        (size,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], at + 8
        if size == 1:  # a 64-bit size follows the type
            if at + 16 > end:
                return None
            (size,) = struct.unpack(">Q", data[at + 8:at + 16])
            body = at + 16
        elif size == 0:  # the box runs to the end
            size = end - at
        if size < body - at or at + size > end:
            return None
        out.append((kind, body, at + size))
        at += size
    return out


def _sound_only_movie(data: bytes) -> bool:
    # The whole file, box by box: one `moov`, whose every `trak` has a media handler (`mdia/hdlr`) of type "soun".
    # A `hdlr` body is version and flags (4), pre_defined (4), then the handler type.
    top = _boxes(data, 0, len(data))
    movies = [box for box in top or () if box[0] == b"moov"]
    if len(movies) != 1:
        return False
    _, start, end = movies[0]
    tracks = [box for box in _boxes(data, start, end) or () if box[0] == b"trak"]
    if not tracks:
        return False
    for _, start, end in tracks:
        media = [box for box in _boxes(data, start, end) or () if box[0] == b"mdia"]
        if len(media) != 1:
            return False
        handlers = [box for box in _boxes(data, media[0][1], media[0][2]) or () if box[0] == b"hdlr"]
        if len(handlers) != 1 or data[handlers[0][1] + 8:handlers[0][1] + 12] != b"soun":
            return False
    return True


def _vint(data: bytes, at: int, *, marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at `at`: (value, length in bytes), or None when it is cut off or invalid.
    Element ids keep their marker bits (`marker`), sizes do not."""
    if at >= len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    value = data[at] if marker else data[at] & (0xFF >> length)
    for byte in data[at + 1:at + length]:
        value = (value << 8) | byte
    return value, length


def _ebml_element(data: bytes, at: int) -> tuple[int, int, int | None] | None:
    """(id, body start, body end, or None for an unknown size) of the element at `at`; None when cut off."""
    element = _vint(data, at, marker=True)
    if element is None or element[1] > 4:
        return None
    size = _vint(data, at + element[1], marker=False)
    if size is None:
        return None
    body = at + element[1] + size[1]
    unknown = size[0] == (1 << (7 * size[1])) - 1
    return element[0], body, None if unknown else body + size[0]


def _ebml_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int | None]]:
    """The children of an element whose body is `data[start:end]`, as far as they can be walked: up to the end,
    the data's end, or a child of unknown size, which is listed but not stepped over."""
    out: list[tuple[int, int, int | None]] = []
    at = start
    while at < min(end, len(data)):
        if len(out) >= _MAX_CHILDREN:
            raise _TooManyElements
        element = _ebml_element(data, at)
        if element is None:
            break
        out.append(element)
        if element[2] is None or element[2] > end:
            break
        at = element[2]
    return out


class _TooManyElements(Exception):
    pass


def _is_webm_audio(head: bytes) -> bool:
    try:
        return _webm_holds_audio_only(head)
    except _TooManyElements:
        return False


def _webm_holds_audio_only(head: bytes) -> bool:
    # The EBML header must say DocType "webm" (Matroska at large is refused). Then, as far as the data reaches, the
    # Segment's Tracks: a video track seen anywhere refuses the file; Tracks seen whole must hold audio tracks only,
    # Opus or Vorbis. Browsers write Tracks before the first Cluster, so the walk stops at a Cluster.
    header = _ebml_element(head, 0)
    if header is None or header[0] != _EBML_HEADER or header[2] is None or header[2] > len(head):
        return False
    # EBML strings may be padded with zero bytes.
    doc_types = [head[body:end].rstrip(b"\x00") for kind, body, end in _ebml_children(head, header[1], header[2])
                 if kind == _EBML_DOC_TYPE and end is not None]
    if doc_types != [b"webm"]:
        return False
    top = [e for e in _ebml_children(head, header[2], len(head)) if e[0] != _EBML_VOID]
    if not top:
        return True
    kind, body, end = top[0]
    if kind != _MKV_SEGMENT:
        return False
    for kind, start, stop in _ebml_children(head, body, end if end is not None else len(head)):
        if kind == _MKV_CLUSTER:
            break
        if kind == _MKV_TRACKS and stop is not None:
            return _audio_tracks(head, start, stop)
    return True


def _audio_tracks(data: bytes, start: int, end: int) -> bool:
    whole = end <= len(data)
    entries = [(body, stop) for kind, body, stop in _ebml_children(data, start, end) if kind == _MKV_TRACK_ENTRY]
    if whole and not entries:
        return False
    for body, stop in entries:
        fields = {kind: data[b:e] for kind, b, e in _ebml_children(data, body, stop if stop is not None else len(data))
                  if e is not None and e <= len(data)}
        track_type = int.from_bytes(fields[_MKV_TRACK_TYPE], "big") if _MKV_TRACK_TYPE in fields else None
        codec = fields.get(_MKV_CODEC_ID, b"").rstrip(b"\x00")
        if track_type == _MKV_TRACK_TYPE_VIDEO or codec.startswith(b"V_"):
            return False
        seen_whole = stop is not None and stop <= len(data)
        if whole and seen_whole and (track_type != _MKV_TRACK_TYPE_AUDIO or codec not in _WEBM_AUDIO_CODECS):
            return False
    return True


def _is_ogg_audio(head: bytes) -> bool:
    # filetype checks only "OggS", and Ogg also carries Theora video. The first page header is: "OggS", version 0,
    # header type (0x02 = beginning of stream), granule (8), serial (4), sequence (4), CRC (4), segment count (1),
    # the segment table, then the codec's identification packet.
    if not _FT_OGG.match(head) or len(head) < 28 or head[4] != 0 or not head[5] & 0x02:
        return False
    packet = 27 + head[26]
    return any(head[packet:packet + len(magic)] == magic for magic in _OGG_AUDIO_CODECS)


def _is_mp3(head: bytes) -> bool:
    # filetype accepts "ID3" followed by anything, and bare frames only when the second byte is F2, F3 or FB,
    # which misses MPEG 1 with CRC (FA) and MPEG 2.5 (E2, E3) while taking three bytes as proof. Here the ID3v2
    # header must be well formed and, when the head reaches past the tag, be followed by a Layer III frame; a bare
    # stream needs a valid frame header and, when the head reaches it, a second one where the first one ends.
    if head[:3] == b"ID3":
        if len(head) < 10:
            return False
        major, revision, flags = head[3], head[4], head[5]
        if major not in (2, 3, 4) or revision == 0xFF or any(b & 0x80 for b in head[6:10]):
            return False
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        end = 10 + size + (10 if major == 4 and flags & 0x10 else 0)
        # Some taggers leave zero padding beyond the declared size.
        while end < len(head) and head[end] == 0:
            end += 1
        if end + 4 > len(head):
            return True
        return _mp3_frame_length(head, end) is not None
    length = _mp3_frame_length(head, 0)
    if length is None:
        return False
    if length + 4 > len(head):
        return True
    # Within one stream the version, layer and sample rate do not change from frame to frame.
    return (_mp3_frame_length(head, length) is not None
            and head[length + 1] & 0xFE == head[1] & 0xFE
            and head[length + 2] & 0x0C == head[2] & 0x0C)


def _mp3_frame_length(head: bytes, at: int) -> int | None:
    """Length in bytes of the MPEG audio Layer III frame whose header starts at `at`, or None if there is none."""
    if at + 4 > len(head):
        return None
    b1, b2 = head[at + 1], head[at + 2]
    if head[at] != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version = (b1 >> 3) & 0x03
    layer = (b1 >> 1) & 0x03
    if version == 1 or layer != 1:  # version 1 is reserved; layer bits 01 mean Layer III
        return None
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 0x03, (b2 >> 1) & 0x01
    if rate_index == 3:
        return None
    bitrate = (_MP3_BITRATES_V1 if version == 3 else _MP3_BITRATES_V2)[bitrate_index]
    if bitrate is None:
        return None
    sample_rate = _MP3_SAMPLE_RATES[version][rate_index]
    # MPEG 1 Layer III frames hold 1152 samples, MPEG 2 and 2.5 hold 576: 144 and 72 bytes per kbit/s per kHz.
    coefficient = 144 if version == 3 else 72
    return coefficient * bitrate * 1000 // sample_rate + padding


_PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class TooLarge(ValueError):
    """More pixels than `MAX_PIXELS`: the sender can shrink the photo and try again."""


class Inflated(ValueError):
    """Decodes to far more than its file size justifies (`MAX_EXPANSION`): not a photo as a phone makes one."""


def bytes_per_pixel(mode: str) -> int:
    """What one pixel of an image in `mode` takes in Pillow's memory once decoded: one byte for bilevel, grey and
    palette images, two for 16-bit grey, four for everything else (RGB, RGBA, CMYK, LA and YCbCr are all stored in
    32-bit pixels)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def check_decode(width: int, height: int, mode: str, file_size: int) -> None:
    """Raises TooLarge or Inflated when an image of these dimensions must not be decoded; returns when it may."""
    if width * height > MAX_PIXELS:
        raise TooLarge(f"图片尺寸过大（{width}×{height}），照片最多 {MAX_PIXELS // 1_000_000:d} 百万像素，"
                       f"请缩小或压缩后重新上传。")
    decoded = width * height * bytes_per_pixel(mode)
    if decoded > max(FREE_DECODE, file_size * MAX_EXPANSION):
        raise Inflated("图片数据异常：解压后的体积与文件大小严重不符，无法处理，请换一张照片。")


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk. Pillow's WebP reader hands the whole file to libwebp, which
    allocates the canvas before any size can be checked, so the size is read here first. RIFF header (12 bytes),
    then the chunk: VP8X carries the canvas (24-bit width - 1, height - 1 at 24 and 27), VP8L a 14-bit width - 1
    and height - 1 after its signature byte (at 21), VP8 the frame size after its start code (at 26 and 28)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def strip_photo_metadata(data: bytes, detected: Detected) -> bytes:
    """The photo re-encoded in its own format with its orientation applied and every piece of metadata gone.

    Raises TooLarge or Inflated (see `check_decode`) before decoding anything, and ValueError when the bytes do not
    decode fully as that format; every message is fit for the sender.
    """
    pil_format = _PIL_FORMATS.get(detected.extension)
    if detected.kind != "photo" or pil_format is None:
        raise ValueError("该文件不是照片")
    if pil_format == "WEBP":
        size = _webp_size(data)
        if size is None:
            raise ValueError("图片已损坏或格式不受支持")
        # The decoded mode is not known yet; RGBA is what a WebP decodes to at most.
        check_decode(*size, "RGBA", len(data))
    try:
        # `formats` keeps Pillow from trying its other ~40 decoders on bytes that merely start like this format.
        # Image.open reads the header only; the pixels are decoded by load(), after the dimensions were checked.
        opened = Image.open(io.BytesIO(data), formats=[pil_format])
        check_decode(opened.width, opened.height, opened.mode, len(data))
        orientation = _orientation(opened)
        # load() decodes every pixel: a file truncated or corrupted after a valid header fails here, not when
        # somebody opens it later.
        opened.load()
        # Turned only when it has to be: a copy of a 12 MP photo is another 50 MB.
        image = opened.transpose(orientation) if orientation is not None else opened
    except (TooLarge, Inflated):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that, and turning the warning into an error with
        # warnings.catch_warnings would change process-wide state from the worker thread this runs in; the
        # explicit limit above is stricter anyway, so the warning is caught only for runs with -W error.
        raise TooLarge("图片尺寸过大，请压缩后重新上传。") from None
    except Exception as exc:
        # Pillow's decoders answer hostile input with a zoo of exception types (OSError, SyntaxError, struct.error,
        # IndexError, ...); every one of them means the same thing here.
        raise ValueError("图片已损坏或格式不受支持") from exc

    image = _to_srgb(image)
    transparency = image.info.get("transparency")
    # Encoders copy some entries from `info` (JPEG comments, PNG ICC profiles) unless told otherwise; an empty
    # `info` leaves nothing for them to copy, and everything the output needs is passed explicitly below.
    image.info = {}
    out = io.BytesIO()
    if pil_format == "JPEG":
        if image.mode not in ("1", "L", "RGB", "CMYK"):
            image = image.convert("RGB")
        image.save(out, format="JPEG", quality=90)
    elif pil_format == "PNG":
        if transparency is not None:
            image.save(out, format="PNG", transparency=transparency)
        else:
            image.save(out, format="PNG")
    else:
        image.save(out, format="WEBP", quality=90)
    return out.getvalue()


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """How to turn the image upright, as its EXIF orientation says, since the orientation goes with the rest of
    the EXIF. ImageOps.exif_transpose would copy every image it is given, turned or not."""
    try:
        return _TRANSPOSE.get(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:
        # A malformed EXIF block is common in photos edited by cheap apps; the pixels are fine, so the photo is
        # kept as stored rather than refused.
        return None


def _to_srgb(image: Image.Image) -> Image.Image:
    """The image converted to sRGB when it carries an ICC profile, so that the profile can be dropped as well.

    Profiles are mostly generic (Display P3 on iPhones), but they can name the device; converting keeps the colours
    right without keeping the profile.
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        if mode == image.mode:
            # In place: a converted copy would be another 4 bytes a pixel.
            ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode, inPlace=True)
            return image
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # An unreadable profile is dropped with the rest; the colours may shift, the photo is still usable.
        return image
    return converted if converted is not None else image
