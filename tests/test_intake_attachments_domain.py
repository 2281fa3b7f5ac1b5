"""Attachments without the service: type detection by content, photo metadata stripping, the file store."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import struct
import uuid
import wave
import zipfile
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms

from services.intake.attachment_store import AttachmentStore, FileStore, storage_key, validate_key
from services.intake.attachments import (
    ACCEPTED,
    AMR,
    HEAD_BYTES,
    JPEG,
    M4A,
    MAX_BYTES,
    MP3,
    OGG,
    PNG,
    WAV,
    WEBM,
    WEBP,
    Detected,
    Inflated,
    TooLarge,
    bytes_per_pixel,
    check_decode,
    detect,
    strip_photo_metadata,
)
from services.intake.recording_metadata import strip_recording_metadata
from services.intake.upload_quota import Held, UnclaimedLedger, over_quota, wait_text

GPS_LATITUDE = (39.0, 54.0, 27.0)
SERIAL = "SN-0042-CITIZEN-PHONE"


# --- sample files -----------------------------------------------------------------------------------------------


def picture(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """A gradient rather than a flat colour, so that re-encoding has real pixels to get right."""
    image = Image.new("RGB", size)
    image.putdata([(x * 255 // size[0], y * 255 // size[1], 128) for y in range(size[1]) for x in range(size[0])])
    return image.convert(mode)


def encoded(image: Image.Image, pil_format: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=pil_format, **params)
    return out.getvalue()


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone Maker"
    exif[ExifTags.Base.Model] = "Phone 12"
    exif[ExifTags.Base.BodySerialNumber] = SERIAL
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: GPS_LATITUDE,
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (116.0, 23.0, 17.0),
    }
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    return exif


def jpeg_bytes() -> bytes:
    return encoded(picture(), "JPEG", quality=95)


def png_bytes() -> bytes:
    return encoded(picture(), "PNG")


def webp_bytes() -> bytes:
    return encoded(picture(), "WEBP", quality=90)


def wav_bytes() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", (i * 97) % 2000 - 1000) for i in range(800)))
    return out.getvalue()


def amr_bytes() -> bytes:
    # AMR-NB storage format (RFC 4867 §5): the magic "#!AMR\n", then frames of one header byte "0 FT(4) Q 0 0"
    # and the speech bits. 0x3C is FT 7 (12.2 kbit/s) with Q=1, followed by its 31 bytes.
    frame = b"\x3c" + bytes(range(1, 32))
    return b"#!AMR\n" + frame * 20


def mp3_frame(b1: int = 0xFB, b2: int = 0x14, length: int = 96) -> bytes:
    # A 4-byte MPEG audio header and a zero payload. FF FB: sync, MPEG 1, Layer III, no CRC. 0x14: bitrate
    # index 1 (32 kbit/s), sample rate index 1 (48 kHz), no padding. 0xC4: mono, original. The frame is
    # 144 * 32000 / 48000 = 96 bytes long, so the next header falls inside the first 261 bytes.
    return bytes([0xFF, b1, b2, 0xC4]) + bytes(length - 4)


def mp3_bytes() -> bytes:
    return mp3_frame() * 10


def id3_mp3_bytes() -> bytes:
    # ID3v2.3 header: "ID3", version 3.0, flags 0, tag size as four 7-bit ("syncsafe") bytes; then one TIT2 text
    # frame (id, 4-byte size, 2 flag bytes, encoding byte 0 and the title), then the MPEG frames.
    title = b"\x00voice note"
    frame = b"TIT2" + struct.pack(">I", len(title)) + b"\x00\x00" + title
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame + mp3_bytes()


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    # ISO BMFF "ftyp" box: u32 size, "ftyp", major brand, u32 minor version, compatible brands (4 bytes each).
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def mp4_file(major: bytes, *compatible: bytes) -> bytes:
    # ftyp, then an empty "mdat" box padded out; detection never looks past the ftyp box.
    payload = bytes(400)
    return ftyp(major, *compatible) + struct.pack(">I", 8 + len(payload)) + b"mdat" + payload


def m4a_bytes() -> bytes:
    # What iPhone Voice Memos and iTunes write: major brand "M4A ".
    return mp4_file(b"M4A ", b"M4A ", b"mp42", b"isom")


def ogg_crc(page: bytes) -> int:
    # Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0 (unlike zlib's crc32).
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_page(packet: bytes, header_type: int = 0x02) -> bytes:
    # Page header: "OggS", version 0, header type (0x02 = first page of the stream), granule position (8),
    # serial number (4), page sequence (4), CRC (4, computed with itself zeroed), segment count, segment table.
    segments = bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    header = b"OggS" + bytes([0, header_type]) + bytes(8) + struct.pack("<II", 0x1234, 0)
    page = header + b"\x00\x00\x00\x00" + bytes([len(segments)]) + segments + packet
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def opus_bytes() -> bytes:
    # OpusHead (RFC 7845 §5.1): magic, version 1, 1 channel, pre-skip 312, input rate 48000, gain 0, mapping 0.
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 5) + b"minyi" + struct.pack("<I", 0)
    return ogg_page(head) + ogg_page(tags, header_type=0x00) + ogg_page(bytes(200), header_type=0x00)


def vorbis_bytes() -> bytes:
    # Vorbis identification header: packet type 1, "vorbis", version 0, channels, rate, three bitrates,
    # block sizes, framing bit.
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, 44100, 0, 64000, 0, 0xB8, 1)
    return ogg_page(ident) + ogg_page(bytes(250), header_type=0x00)


def theora_bytes() -> bytes:
    # Ogg carrying Theora video: the identification packet starts with 0x80 "theora".
    return ogg_page(b"\x80theora" + bytes([3, 2, 1]) + bytes(31)) + ogg_page(bytes(250), header_type=0x00)


# --- recordings from browsers (MediaRecorder) ------------------------------------------------------------------
#
# Neither ffmpeg nor sox (nor any Opus or AAC encoder) is installed here, so the browser recordings are built by hand:
# the WebM from the EBML (RFC 8794) and Matroska (RFC 9559) specifications, laid out as Chromium's MediaRecorder
# writes them (EBML header, a Segment of unknown size, Info, Tracks, Clusters of unknown size with SimpleBlocks), and
# the MP4 from ISO/IEC 14496-12 as Safari's MediaRecorder writes it (fragmented: ftyp "iso5", moov with mvex, then
# moof/mdat pairs). The WebM's audio is real Opus: each block holds F8 FF FE, the packet Opus encoders emit for
# 20 ms of silence (TOC 0xF8: CELT-only, fullband, 20 ms, one frame). The MP4's boxes that detection does not read
# (sample tables, AAC frames) hold zeros of their usual sizes.


def vint_size(n: int) -> bytes:
    """An EBML element data size in the fewest bytes: a length marker bit, then the value."""
    length = 1
    while n >= (1 << (7 * length)) - 1:
        length += 1
    return ((1 << (7 * length)) | n).to_bytes(length, "big")


UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def ebml(element_id: int, *children: bytes, unknown_size: bool = False) -> bytes:
    body = b"".join(children)
    ident = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return ident + (UNKNOWN_SIZE if unknown_size else vint_size(len(body))) + body


def ebml_uint(element_id: int, value: int) -> bytes:
    return ebml(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def ebml_header(doc_type: bytes = b"webm") -> bytes:
    return ebml(0x1A45DFA3, ebml_uint(0x4286, 1), ebml_uint(0x42F7, 1), ebml_uint(0x42F2, 4), ebml_uint(0x42F3, 8),
                ebml(0x4282, doc_type), ebml_uint(0x4287, 4), ebml_uint(0x4285, 2))


OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
OPUS_SILENCE = b"\xf8\xff\xfe"


def opus_track(number: int = 1, codec: bytes = b"A_OPUS") -> bytes:
    return ebml(0xAE, ebml_uint(0xD7, number), ebml_uint(0x73C5, 0x5EED0000 + number), ebml_uint(0x83, 2),
                ebml(0x86, codec), ebml(0x63A2, OPUS_HEAD),
                ebml(0xE1, ebml(0xB5, struct.pack(">d", 48000.0)), ebml_uint(0x9F, 1)))


def vp8_track(number: int = 2) -> bytes:
    return ebml(0xAE, ebml_uint(0xD7, number), ebml_uint(0x73C5, 0x5EED0000 + number), ebml_uint(0x83, 1),
                ebml(0x86, b"V_VP8"), ebml(0xE0, ebml_uint(0xB0, 320), ebml_uint(0xBA, 240)))


def webm_bytes(*tracks: bytes, doc_type: bytes = b"webm", seconds: int = 2) -> bytes:
    info = ebml(0x1549A966, ebml_uint(0x2AD7B1, 1_000_000), ebml(0x4D80, b"Chrome"), ebml(0x5741, b"Chrome"))
    clusters = []
    for second in range(seconds):
        # SimpleBlock: track number (vint), timecode relative to the cluster (int16), flags (0x80: keyframe), frame.
        blocks = [ebml(0xA3, b"\x81" + struct.pack(">hB", 20 * i, 0x80) + OPUS_SILENCE) for i in range(50)]
        clusters.append(ebml(0x1F43B675, ebml_uint(0xE7, 1000 * second), *blocks, unknown_size=True))
    segment = ebml(0x18538067, info, ebml(0x1654AE6B, *(tracks or (opus_track(),))), *clusters, unknown_size=True)
    return ebml_header(doc_type) + segment


def webm_opus_bytes() -> bytes:
    return webm_bytes(opus_track())


def bmff_box(kind: bytes, *children: bytes) -> bytes:
    body = b"".join(children)
    return struct.pack(">I", 8 + len(body)) + kind + body


def bmff_track(handler: bytes) -> bytes:
    # hdlr: version and flags, pre_defined, the handler type, three reserved words, a name.
    hdlr = bmff_box(b"hdlr", bytes(8) + handler + bytes(12) + b"Core Media\x00")
    stbl = bmff_box(b"stbl", *(bmff_box(kind, bytes(8)) for kind in (b"stsd", b"stts", b"stsc", b"stsz", b"stco")))
    minf = bmff_box(b"minf", bmff_box(b"smhd" if handler == b"soun" else b"vmhd", bytes(8)),
                    bmff_box(b"dinf", bmff_box(b"dref", bytes(8))), stbl)
    return bmff_box(b"trak", bmff_box(b"tkhd", bytes(84)),
                    bmff_box(b"mdia", bmff_box(b"mdhd", bytes(24)), hdlr, minf))


def safari_mp4_bytes(*handlers: bytes, major: bytes = b"iso5") -> bytes:
    tracks = [bmff_track(h) for h in handlers or (b"soun",)]
    moov = bmff_box(b"moov", bmff_box(b"mvhd", bytes(100)), *tracks,
                    bmff_box(b"mvex", *(bmff_box(b"trex", bytes(24)) for _ in tracks)))
    fragments = b"".join(bmff_box(b"moof", bmff_box(b"mfhd", bytes(8)), bmff_box(b"traf", bytes(40)))
                         + bmff_box(b"mdat", bytes(600)) for _ in range(3))
    return ftyp(major, major, b"iso6", b"mp41") + moov + fragments


def png_header_only(width: int, height: int) -> bytes:
    # A PNG whose IHDR claims huge dimensions but whose IDAT holds a few bytes: what a decompression bomb looks
    # like before it is decoded.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("report.txt", "路灯坏了" * 100)
    return out.getvalue()


PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"%" * 300


# --- detection --------------------------------------------------------------------------------------------------


ACCEPTED_SAMPLES = {
    "jpeg": (jpeg_bytes, JPEG),
    "png": (png_bytes, PNG),
    "webp": (webp_bytes, WEBP),
    "amr": (amr_bytes, AMR),
    "mp3 bare frames": (mp3_bytes, MP3),
    "mp3 with ID3v2": (id3_mp3_bytes, MP3),
    "mp3 MPEG 1 with CRC (FF FA)": (lambda: mp3_frame(b1=0xFA) * 10, MP3),
    # FF E3: MPEG 2.5 Layer III; 0x80 = 64 kbit/s at 11025 Hz: 72 * 64000 // 11025 = 417 bytes per frame.
    "mp3 MPEG 2.5 (FF E3)": (lambda: mp3_frame(b1=0xE3, b2=0x80, length=417) * 3, MP3),
    "m4a": (m4a_bytes, M4A),
    "m4b audiobook": (lambda: mp4_file(b"M4B ", b"M4B ", b"mp42", b"isom"), M4A),
    "wav": (wav_bytes, WAV),
    "ogg opus": (opus_bytes, OGG),
    "ogg vorbis": (vorbis_bytes, OGG),
    "webm opus (Chromium's MediaRecorder)": (webm_opus_bytes, WEBM),
    "webm vorbis": (lambda: webm_bytes(opus_track(codec=b"A_VORBIS")), WEBM),
}


@pytest.mark.parametrize("name", ACCEPTED_SAMPLES)
def test_every_accepted_type_is_detected_from_its_head(name: str) -> None:
    make, expected = ACCEPTED_SAMPLES[name]
    data = make()
    assert detect(data[:HEAD_BYTES]) == expected
    assert detect(data) == expected


def test_the_accepted_types_are_the_eight_of_the_contract_and_webm() -> None:
    assert {(d.kind, d.media_type, d.extension) for d in ACCEPTED} == {
        ("photo", "image/jpeg", "jpg"), ("photo", "image/png", "png"), ("photo", "image/webp", "webp"),
        ("voice", "audio/amr", "amr"), ("voice", "audio/mpeg", "mp3"), ("voice", "audio/mp4", "m4a"),
        ("voice", "audio/wav", "wav"), ("voice", "audio/ogg", "ogg"), ("voice", "audio/webm", "webm"),
    }
    assert MAX_BYTES == 10 * 1024 * 1024
    with pytest.raises(AttributeError):
        JPEG.kind = "voice"  # type: ignore[misc]


REJECTED_SAMPLES = {
    "empty": lambda: b"",
    "gif": lambda: encoded(picture(), "GIF"),
    "bmp": lambda: encoded(picture(), "BMP"),
    "pdf": lambda: PDF,
    "zip": zip_bytes,
    "plain text": lambda: ("市民反映：小区路灯坏了，晚上很黑。" * 20).encode(),
    "html": lambda: b"<!DOCTYPE html><html><head><title>x</title></head><body><script>alert(1)</script></body></html>",
    "svg": lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    # Generic ISO BMFF brands: the leading bytes cannot tell an audio-only file from a video, so both go.
    "mp4 video, isom": lambda: mp4_file(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "mp4 video, mp42": lambda: mp4_file(b"mp42", b"mp42", b"isom"),
    "mp4 with M4A only among compatible brands": lambda: mp4_file(b"mp42", b"M4A ", b"isom"),
    # iTunes video lists M4A among its compatible brands; only the major brand counts.
    "m4v video": lambda: mp4_file(b"M4V ", b"M4V ", b"M4A ", b"mp42"),
    "quicktime": lambda: mp4_file(b"qt  ", b"qt  "),
    "3gp": lambda: mp4_file(b"3gp4", b"3gp4", b"isom"),
    "ftyp box with a broken size": lambda: b"\x00\x00\x00\x03ftypM4A " + bytes(300),
    "ogg theora video": theora_bytes,
    "ogg page that does not start a stream": lambda: ogg_page(b"OpusHead" + bytes(11), header_type=0x00),
    "amr-wb": lambda: b"#!AMR-WB\n" + b"\x2c" * 300,
    "amr magic with an impossible frame header": lambda: b"#!AMR\n" + b"\xff" * 300,
    "ID3 followed by text": lambda: b"ID3 is what this text file starts with, and nothing else" + b" " * 300,
    "ID3 tag followed by something other than MPEG audio": lambda: id3_mp3_bytes()[:31] + PDF,
    "two bytes that look like an MPEG sync": lambda: b"\xff\xfb" + b"A" * 300,
    "mp3 frame not followed by another": lambda: mp3_frame() + b"PK\x03\x04" + bytes(300),
    "mpeg layer II": lambda: mp3_frame(b1=0xFD) * 10,
    "aac adts": lambda: b"\xff\xf1\x50\x80" + bytes(300),
    "flac": lambda: b"fLaC\x00\x00\x00\x22" + bytes(300),
    "png signature with mangled line endings": lambda: b"\x89PNG\n\x1a\n" + png_bytes()[8:],
    "riff avi": lambda: b"RIFF\x00\x10\x00\x00AVI LIST" + bytes(300),
    "webm video (vp8)": lambda: webm_bytes(vp8_track(1)),
    "webm from a camera: opus and vp8": lambda: webm_bytes(opus_track(1), vp8_track(2)),
    "matroska audio": lambda: webm_bytes(opus_track(), doc_type=b"matroska"),
    "ebml magic and nothing else": lambda: b"\x1a\x45\xdf\xa3" + bytes(300),
}


@pytest.mark.parametrize("name", REJECTED_SAMPLES)
def test_other_content_is_refused(name: str) -> None:
    data = REJECTED_SAMPLES[name]()
    assert detect(data[:HEAD_BYTES]) is None
    assert detect(data) is None


def test_a_pdf_called_photo_jpg_is_refused_because_only_bytes_count() -> None:
    # The upload's name and Content-Type never reach detect; what a client calls "photo.jpg" is judged by content.
    upload = {"filename": "photo.jpg", "content_type": "image/jpeg", "content": PDF}
    assert detect(upload["content"][:HEAD_BYTES]) is None


def test_a_jpeg_called_anything_is_still_a_jpeg() -> None:
    assert detect(jpeg_bytes()[:HEAD_BYTES]) == Detected("photo", "image/jpeg", "jpg")


def test_short_heads_do_not_crash() -> None:
    for sample in [*(make() for make, _ in ACCEPTED_SAMPLES.values()), PDF]:
        for length in range(0, 40):
            result = detect(sample[:length])
            assert result is None or result in ACCEPTED


# --- photo metadata ---------------------------------------------------------------------------------------------


def test_exif_with_gps_and_serial_is_gone_from_a_jpeg() -> None:
    original = encoded(picture(), "JPEG", quality=95, exif=exif_with_gps())
    before = Image.open(io.BytesIO(original)).getexif()
    assert before.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == GPS_LATITUDE
    assert before[ExifTags.Base.BodySerialNumber] == SERIAL
    assert SERIAL.encode() in original

    stripped = strip_photo_metadata(original, JPEG)

    after = Image.open(io.BytesIO(stripped))
    assert after.format == "JPEG"
    assert after.size == (64, 48)
    assert not after.getexif()
    assert not after.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert "exif" not in after.info
    assert b"Exif" not in stripped
    assert SERIAL.encode() not in stripped
    assert b"Phone Maker" not in stripped
    assert detect(stripped) == JPEG


def test_comments_xmp_and_icc_profiles_are_gone_too() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>'
           b"<exif:GPSLatitude>39,54N</exif:GPSLatitude></rdf:RDF></x:xmpmeta>")
    original = encoded(picture(), "JPEG", comment=b"taken at home", icc_profile=icc, xmp=xmp)
    assert b"taken at home" in original and b"GPSLatitude" in original

    stripped = strip_photo_metadata(original, JPEG)
    after = Image.open(io.BytesIO(stripped))
    assert b"taken at home" not in stripped
    assert b"GPSLatitude" not in stripped
    assert "icc_profile" not in after.info
    assert "comment" not in after.info and "xmp" not in after.info


def test_png_text_chunks_and_exif_are_gone_and_png_stays_png() -> None:
    from PIL.PngImagePlugin import PngInfo

    text = PngInfo()
    text.add_text("Location", "北京市东城区某小区3号楼")
    original = encoded(picture(mode="RGBA"), "PNG", pnginfo=text, exif=exif_with_gps())
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    stripped = strip_photo_metadata(original, PNG)
    after = Image.open(io.BytesIO(stripped))
    assert after.format == "PNG"
    assert after.mode == "RGBA"
    assert "Location" not in after.info
    assert not after.getexif()
    assert SERIAL.encode() not in stripped
    assert after.tobytes() == Image.open(io.BytesIO(original)).tobytes(), "PNG must stay lossless"


def test_palette_png_keeps_its_transparency() -> None:
    image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    original = encoded(image, "PNG", transparency=0)
    after = Image.open(io.BytesIO(strip_photo_metadata(original, PNG)))
    assert after.mode == "P"
    assert after.info.get("transparency") == 0


def test_webp_exif_is_gone_and_webp_stays_webp() -> None:
    original = encoded(picture(), "WEBP", quality=90, exif=exif_with_gps())
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    stripped = strip_photo_metadata(original, WEBP)
    after = Image.open(io.BytesIO(stripped))
    assert after.format == "WEBP"
    assert not after.getexif()
    assert b"EXIF" not in stripped and SERIAL.encode() not in stripped


def test_orientation_is_applied_before_exif_is_dropped() -> None:
    # A 20x10 image whose left column is red, stored sideways: orientation 6 means "rotate 90° clockwise to view".
    image = Image.new("RGB", (20, 10), (0, 0, 255))
    for y in range(10):
        for x in range(3):
            image.putpixel((x, y), (255, 0, 0))
    original = encoded(image, "JPEG", quality=95, exif=exif_with_gps(orientation=6))

    after = Image.open(io.BytesIO(strip_photo_metadata(original, JPEG)))
    assert after.size == (10, 20)
    assert ExifTags.Base.Orientation not in after.getexif()
    # Turned clockwise, the left column becomes the top row.
    red, _, blue = after.getpixel((5, 0))
    assert red > 200 and blue < 60
    red, _, blue = after.getpixel((5, 19))
    assert blue > 200 and red < 60


def test_a_photo_without_any_metadata_comes_back_as_the_same_picture() -> None:
    original = png_bytes()
    after = Image.open(io.BytesIO(strip_photo_metadata(original, PNG)))
    assert after.tobytes() == picture().tobytes()


def test_garbage_after_a_jpeg_magic_is_invalid() -> None:
    data = b"\xff\xd8\xff\xe0" + os.urandom(2000)
    assert detect(data) == JPEG
    with pytest.raises(ValueError, match="图片已损坏"):
        strip_photo_metadata(data, JPEG)


def test_a_truncated_jpeg_is_invalid() -> None:
    data = encoded(picture((256, 256)), "JPEG", quality=95)
    assert detect(data[: len(data) // 2]) == JPEG
    with pytest.raises(ValueError, match="图片已损坏"):
        strip_photo_metadata(data[: len(data) // 2], JPEG)


@pytest.mark.parametrize("pil_format, detected", [("PNG", PNG), ("WEBP", WEBP)])
def test_truncated_png_and_webp_are_invalid(pil_format: str, detected: Detected) -> None:
    image = Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3))  # noise does not compress
    data = encoded(image, pil_format)
    with pytest.raises(ValueError, match="图片已损坏"):
        strip_photo_metadata(data[: len(data) * 2 // 3], detected)


def test_a_png_decoded_as_what_detect_said_only() -> None:
    # A JPEG handed in as PNG (detect would never say so, but the function must not trust its caller's label).
    with pytest.raises(ValueError, match="图片已损坏"):
        strip_photo_metadata(jpeg_bytes(), PNG)


def test_voice_is_not_a_photo() -> None:
    with pytest.raises(ValueError):
        strip_photo_metadata(wav_bytes(), WAV)


@pytest.mark.parametrize("width, height", [(8000, 8000), (20000, 20000)])
def test_oversized_images_are_refused_before_they_are_decoded(width: int, height: int) -> None:
    # 64 MP is over the 40 MP limit but under Pillow's own; 400 MP is over twice Pillow's limit, where Pillow
    # raises DecompressionBombError itself.
    data = png_header_only(width, height)
    assert detect(data) == PNG
    with pytest.raises(ValueError, match="尺寸过大"):
        strip_photo_metadata(data, PNG)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_warning_raised_as_an_error_still_means_too_large() -> None:
    with pytest.raises(ValueError, match="尺寸过大"):
        strip_photo_metadata(png_header_only(10000, 10000), PNG)


# --- storage ----------------------------------------------------------------------------------------------------


def test_storage_keys_fan_out_and_are_valid() -> None:
    attachment_id = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
    key = storage_key(attachment_id)
    assert key == "3f/3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
    assert validate_key(key) == key
    # Other spellings of the same UUID land on the same key.
    assert storage_key(attachment_id.upper()) == key
    assert storage_key(attachment_id.replace("-", "")) == key
    for _ in range(100):
        validate_key(storage_key(str(uuid.uuid4())))


@pytest.mark.parametrize("attachment_id", ["", "../../etc/passwd", "not-a-uuid", "3f2b8c1e"])
def test_storage_key_refuses_what_is_not_a_uuid(attachment_id: str) -> None:
    with pytest.raises(ValueError):
        storage_key(attachment_id)


async def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "attachments")
    assert isinstance(store, AttachmentStore)
    key = storage_key(str(uuid.uuid4()))
    data = jpeg_bytes()

    assert not await store.exists(key)
    await store.put(key, data)
    assert await store.exists(key)
    assert await store.get(key) == data
    assert (tmp_path / "attachments" / key).read_bytes() == data


async def test_file_store_files_are_private(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "attachments")
    key = "ab/abcdef"
    old_umask = os.umask(0o022)
    try:
        await store.put(key, b"voice")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "attachments" / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "attachments" / "ab").stat().st_mode) == 0o700


async def test_file_store_overwrites_atomically(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    key = "ab/abcdef"
    await store.put(key, b"old")
    await store.put(key, b"new and longer")
    assert await store.get(key) == b"new and longer"
    # No temporary file is left next to it.
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abcdef"]


async def test_a_failed_write_leaves_the_old_bytes_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path)
    key = "ab/abcdef"
    await store.put(key, b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        await store.put(key, b"new")
    monkeypatch.undo()

    assert await store.get(key) == b"old"
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abcdef"]


async def test_concurrent_puts_of_one_key_leave_one_whole_value(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    values = [bytes([i]) * 200_000 for i in range(10)]
    await asyncio.gather(*(store.put("ab/abcdef", value) for value in values))
    assert await store.get("ab/abcdef") in values
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == ["abcdef"]


async def test_missing_keys(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(KeyError):
        await store.get("ab/missing")
    assert not await store.exists("ab/missing")
    await store.put("ab/abcdef", b"x")
    # The fan-out directory is not an attachment.
    with pytest.raises(KeyError):
        await store.get("ab")
    assert not await store.exists("ab")
    # Nor is a path through an attachment.
    with pytest.raises(KeyError):
        await store.get("ab/abcdef/more")


async def test_delete_is_idempotent(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.put("ab/abcdef", b"x")
    await store.delete("ab/abcdef")
    assert not await store.exists("ab/abcdef")
    with pytest.raises(KeyError):
        await store.get("ab/abcdef")
    await store.delete("ab/abcdef")
    await store.delete("cd/never-stored")
    await store.delete("ab")  # a directory, not an attachment: left alone
    assert (tmp_path / "ab").is_dir()


BAD_KEYS = ["../x", "/etc/passwd", "a/../../b", "..", ".", "", "a//b", "a/", "/a", "a/./b", "a.b", "a\\b",
            "a b", "ä", "a\x00b", "~/x", "a" * 300]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused_by_every_operation(tmp_path: Path, key: str) -> None:
    store = FileStore(tmp_path / "root")
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        await store.put(key, b"x")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


# --- recordings from browsers -------------------------------------------------------------------------------------


def test_a_chromium_voice_note_is_webm_whole_and_by_its_head() -> None:
    data = webm_opus_bytes()
    assert data[:4] == b"\x1a\x45\xdf\xa3" and b"A_OPUS" in data[:HEAD_BYTES]
    assert detect(data) == WEBM
    assert detect(data[:HEAD_BYTES]) == WEBM
    assert detect(data[:HEAD_BYTES]).media_type == "audio/webm"  # type: ignore[union-attr]


def test_a_webm_video_is_refused_where_its_tracks_are_seen() -> None:
    # Tracks seen whole must all be Opus or Vorbis audio: a subtitle track or an unknown codec is no voice note.
    assert detect(webm_bytes(opus_track(codec=b"A_AAC"))) is None
    subtitles = ebml(0xAE, ebml_uint(0xD7, 1), ebml_uint(0x83, 0x11), ebml(0x86, b"S_TEXT/UTF8"))
    assert detect(webm_bytes(subtitles)) is None
    assert detect(webm_bytes(opus_track(1), subtitles)) is None
    # A video track is refused even where only part of the Tracks element is at hand.
    camera = webm_bytes(opus_track(1), vp8_track(2))
    cut = camera.index(b"V_VP8") + 5
    assert detect(camera[:cut]) is None
    # Tracks cut off before any video shows: what can be seen is audio, and that is all that can be judged.
    assert detect(camera[:camera.index(b"A_OPUS") + 6]) == WEBM


def test_an_empty_tracks_element_or_a_first_element_other_than_a_segment_is_refused() -> None:
    empty = ebml_header() + ebml(0x18538067, ebml(0x1654AE6B), unknown_size=True)
    assert detect(empty) is None
    assert detect(ebml_header() + ebml(0x1549A966, ebml_uint(0x2AD7B1, 1_000_000))) is None


def test_a_safari_voice_note_is_mp4_audio_when_the_whole_file_shows_sound_tracks_only() -> None:
    data = safari_mp4_bytes()
    for brand in (b"iso5", b"isom", b"mp42"):
        assert detect(safari_mp4_bytes(major=brand)) == M4A, brand
    assert detect(data) == Detected("voice", "audio/mp4", "m4a")
    # From the head alone an "iso5" file may be anything: refused until the whole file is there.
    assert detect(data[:HEAD_BYTES]) is None
    assert detect(data[:-10]) is None, "cut short"
    assert detect(data + bytes(3)) is None, "bytes after the last box"


@pytest.mark.parametrize("handlers", [(b"vide",), (b"soun", b"vide"), (b"vide", b"soun"), (b"soun", b"text")],
                         ids=["video", "sound and video", "video and sound", "sound and subtitles"])
def test_an_mp4_with_a_generic_brand_and_any_track_but_sound_is_refused(handlers: tuple[bytes, ...]) -> None:
    assert detect(safari_mp4_bytes(*handlers)) is None


def test_an_mp4_without_a_movie_box_or_with_two_is_refused() -> None:
    data = safari_mp4_bytes()
    ftyp_end = struct.unpack(">I", data[:4])[0]
    moov_end = ftyp_end + struct.unpack(">I", data[ftyp_end:ftyp_end + 4])[0]
    assert detect(data[:ftyp_end] + data[moov_end:]) is None
    assert detect(data[:moov_end] + data[ftyp_end:]) is None
    # A brand that is neither generic nor audio-only stays refused whatever its tracks.
    assert detect(safari_mp4_bytes(major=b"qt  ")) is None


# --- decoding limits ----------------------------------------------------------------------------------------------


def test_pixels_in_memory_by_mode() -> None:
    assert [bytes_per_pixel(m) for m in ("1", "L", "P", "I;16", "I;16B", "LA", "RGB", "RGBA", "CMYK", "I", "F")] == [
        1, 1, 1, 2, 2, 4, 4, 4, 4, 4, 4]


@pytest.mark.parametrize(("width", "height", "mode", "file_size", "outcome"), [
    # 4000 x 4000 = 16,000,000 pixels: exactly the limit.
    (4000, 4000, "L", 1_000, None),
    # 4001 x 4000 = 16,004,000: one column over.
    (4001, 4000, "L", 10_000_000, TooLarge),
    (6320, 6320, "RGB", 151_000, TooLarge),
    # 4000 x 3000 RGB = 48,000,000 bytes decoded; 200 x 200,000 = 40,000,000 allowed: inflated.
    (4000, 3000, "RGB", 200_000, Inflated),
    # 200 x 240,000 = 48,000,000: just allowed.
    (4000, 3000, "RGB", 240_000, None),
    # 2896 x 2896 RGB = 33,547,264 bytes, under 32 MiB (33,554,432): allowed whatever the file size.
    (2896, 2896, "RGB", 100, None),
    # 2897 x 2896 = 33,558,848 bytes: over 32 MiB, and 100 bytes allow 20,000.
    (2897, 2896, "RGB", 100, Inflated),
    # A 12 MP phone photo of 3 MB: 48,000,000 bytes, 600,000,000 allowed.
    (4000, 3000, "RGB", 3_000_000, None),
])
def test_what_may_be_decoded(width: int, height: int, mode: str, file_size: int,
                             outcome: type[Exception] | None) -> None:
    if outcome is None:
        check_decode(width, height, mode, file_size)
    else:
        with pytest.raises(outcome) as refused:
            check_decode(width, height, mode, file_size)
        assert isinstance(refused.value, ValueError) and "图片" in str(refused.value)


def flat_png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    return encoded(Image.new(mode, size), "PNG", optimize=True)


def test_a_flat_twelve_megapixel_png_of_a_few_kilobytes_is_refused_undecoded() -> None:
    data = flat_png((4000, 3000))
    assert len(data) < 100_000
    with pytest.raises(Inflated, match="解压后的体积"):
        strip_photo_metadata(data, PNG)


def test_a_webp_is_measured_from_its_header_before_libwebp_sees_it() -> None:
    # VP8X header (extended format) with a 5000 x 4000 canvas: 20 MP, over the limit. The chunk is read by hand, so
    # the rest of the file may be anything.
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (4999).to_bytes(3, "little") + (
        3999).to_bytes(3, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    assert detect(data) == WEBP
    with pytest.raises(TooLarge, match="5000×4000"):
        strip_photo_metadata(data, WEBP)
    # The lossless and lossy forms of Pillow's own output are measured the same way.
    for params in ({"lossless": True}, {"quality": 80}):
        small = encoded(picture((64, 48)), "WEBP", **params)
        assert Image.open(io.BytesIO(strip_photo_metadata(small, WEBP))).size == (64, 48)


# --- recordings' metadata -----------------------------------------------------------------------------------------

HOME = "北京市东城区某小区3号楼".encode()


def id3v1(title: bytes) -> bytes:
    # ID3v1: "TAG", title (30), artist (30), album (30), year (4), comment (30), genre (1): 128 bytes.
    return b"TAG" + title.ljust(30, b"\x00")[:30] + bytes(30 + 30 + 4 + 30) + b"\xff"


def apev2(value: bytes) -> bytes:
    # APEv2 items then a 32-byte footer: "APETAGEX", version 2000, tag size (items + footer), item count, flags.
    item = struct.pack("<II", len(value), 0) + b"Comment\x00" + value
    return item + b"APETAGEX" + struct.pack("<IIII", 2000, len(item) + 32, 1, 0) + bytes(8)


def test_an_mp3_loses_its_id3_and_ape_tags_and_keeps_its_frames() -> None:
    tagged = id3_mp3_bytes() + apev2(HOME) + id3v1(b"home recording")
    assert detect(tagged) == MP3
    assert strip_recording_metadata(tagged, MP3) == mp3_bytes()


def riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def test_a_wav_loses_its_info_and_broadcast_chunks() -> None:
    plain = wav_bytes()
    # wave writes RIFF, "fmt " (16 bytes of body) and "data"; the other chunks go between them, as recorders put them.
    fmt_end = 12 + 8 + 16
    info = riff_chunk(b"LIST", b"INFO" + riff_chunk(b"INAM", HOME) + riff_chunk(b"IART", b"citizen"))
    bext = riff_chunk(b"bext", b"Originator: Phone 12" + bytes(3))
    body = plain[12:fmt_end] + info + bext + plain[fmt_end:]
    tagged = b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body
    assert detect(tagged) == WAV
    assert strip_recording_metadata(tagged, WAV) == plain
    # A recorder that never filled in the sizes (0 for the RIFF, 0xFFFFFFFF for the data): samples run to the end.
    unsized = b"RIFF" + bytes(4) + plain[8:fmt_end] + b"data" + b"\xff\xff\xff\xff" + plain[fmt_end + 8:]
    stripped = strip_recording_metadata(unsized, WAV)
    assert stripped == plain


def test_a_wav_whose_chunks_run_past_its_end_is_damaged() -> None:
    plain = wav_bytes()
    broken = plain[:12] + b"LIST" + struct.pack("<I", 10_000) + b"INFO"
    with pytest.raises(ValueError, match="录音文件已损坏"):
        strip_recording_metadata(broken, WAV)


def test_an_m4a_loses_its_user_data_and_keeps_every_offset() -> None:
    # ©xyz is where the phone was (ISO 6709); udta inside moov and inside the track, a top-level meta.
    xyz = bmff_box(b"\xa9xyz", b"\x00\x11\x15\xc7+39.9042+116.4074/")
    udta = bmff_box(b"udta", xyz)
    track = bmff_track(b"soun")
    track = track[:4] + b"trak" + track[8:] + udta
    track = struct.pack(">I", len(track)) + track[4:]
    moov = bmff_box(b"moov", bmff_box(b"mvhd", bytes(100)), track, udta)
    meta = bmff_box(b"meta", bytes(4) + bmff_box(b"hdlr", bytes(8) + b"mdir" + bytes(13)), HOME)
    tagged = ftyp(b"M4A ", b"M4A ", b"isom") + moov + meta + bmff_box(b"mdat", bytes(400))
    assert detect(tagged) == M4A

    stripped = strip_recording_metadata(tagged, M4A)
    assert len(stripped) == len(tagged), "offsets into the file must not move"
    assert b"+39.9042" not in stripped and HOME not in stripped
    assert stripped.count(b"free") == 3 and b"udta" not in stripped and b"meta" not in stripped
    # The samples (the mdat box, last) are as they were.
    assert stripped[-408:] == tagged[-408:]
    assert detect(stripped) == M4A


def test_a_safari_voice_note_keeps_its_sound_tracks() -> None:
    data = safari_mp4_bytes()
    assert strip_recording_metadata(data, M4A) == data


def test_a_webm_loses_its_tags_and_title_and_keeps_its_length() -> None:
    info = ebml(0x1549A966, ebml_uint(0x2AD7B1, 1_000_000), ebml(0x7BA9, HOME), ebml(0x4D80, b"Chrome"),
                ebml(0x5741, b"Chrome"))
    tags = ebml(0x1254C367, ebml(0x7373, ebml(0x67C8, ebml(0x45A3, b"LOCATION"), ebml(0x4487, b"+39.9+116.4"))))
    blocks = [ebml(0xA3, b"\x81" + struct.pack(">hB", 20 * i, 0x80) + OPUS_SILENCE) for i in range(5)]
    # The cluster has an unknown size, as a browser writes it; the tags come after it.
    cluster = ebml(0x1F43B675, ebml_uint(0xE7, 0), *blocks, unknown_size=True)
    tagged = ebml_header() + ebml(0x18538067, info, ebml(0x1654AE6B, opus_track()), cluster, tags,
                                  unknown_size=True)
    assert detect(tagged) == WEBM

    stripped = strip_recording_metadata(tagged, WEBM)
    assert len(stripped) == len(tagged)
    assert HOME not in stripped and b"LOCATION" not in stripped and b"+39.9" not in stripped
    assert b"Chrome" in stripped and OPUS_SILENCE in stripped
    assert stripped.endswith(cluster + b"\xec\x01" + (len(tags) - 9).to_bytes(7, "big") + bytes(len(tags) - 9))
    assert detect(stripped) == WEBM
    # Chromium's own recordings carry nothing to strip.
    assert strip_recording_metadata(webm_opus_bytes(), WEBM) == webm_opus_bytes()


def ogg_pages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(sequence number, header type, body) of each page, checking every page's CRC on the way."""
    out = []
    at = 0
    while at < len(data):
        assert data[at:at + 4] == b"OggS"
        count = data[at + 26]
        end = at + 27 + count + sum(data[at + 27:at + 27 + count])
        page = data[at:end]
        assert struct.unpack("<I", page[22:26])[0] == ogg_crc(page[:22] + bytes(4) + page[26:]), "bad CRC"
        out.append((struct.unpack("<I", page[18:22])[0], page[5], page[27 + count:]))
        at = end
    return out


def ogg_page_at(laces: list[int], body: bytes, *, sequence: int, header_type: int = 0, granule: int = 0) -> bytes:
    header = b"OggS" + bytes([0, header_type]) + struct.pack("<qII", granule, 0x1234, sequence)
    page = header + bytes(4) + bytes([len(laces)]) + bytes(laces) + body
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


def opus_with_comments(comment: bytes) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 9) + b"libopus 1" + struct.pack("<II", 1, len(comment)) + comment
    # The tags packet over several pages: lacing values of 255 continue a packet, and a page holds 255 of them.
    pages = [ogg_page(head)]
    chunks = [tags[i:i + 255 * 255] for i in range(0, len(tags), 255 * 255)]
    for n, chunk in enumerate(chunks):
        last = n == len(chunks) - 1
        laces = [255] * (len(chunk) // 255) + ([len(chunk) % 255] if last else [])
        pages.append(ogg_page_at(laces, chunk, sequence=n + 1, header_type=0 if n == 0 else 1,
                                 granule=0 if last else -1))
    for n in range(3):
        audio = bytes([0xF8, 0xFF, 0xFE]) * (n + 1)
        pages.append(ogg_page_at([len(audio)], audio, sequence=len(pages), header_type=0x04 if n == 2 else 0,
                                 granule=960 * (n + 1)))
    return b"".join(pages)


def test_an_ogg_opus_loses_its_comments_even_over_several_pages() -> None:
    # A cover picture of 70,000 bytes and a place: the comment packet takes two pages.
    comment = b"LOCATION=" + HOME + b"METADATA_BLOCK_PICTURE=" + bytes(70_000)
    tagged = opus_with_comments(comment)
    before = ogg_pages(tagged)
    assert len(before) == 6 and detect(tagged) == OGG

    stripped = strip_recording_metadata(tagged, OGG)
    after = ogg_pages(stripped)
    assert HOME not in stripped
    # OpusHead, the emptied OpusTags (magic, vendor length 0, comment count 0), then the three audio pages, numbered
    # again from 2 with their bodies and flags untouched.
    assert [seq for seq, _, _ in after] == [0, 1, 2, 3, 4]
    assert after[0] == before[0]
    assert after[1] == (1, 0, b"OpusTags" + bytes(8))
    assert [(kind, body) for _, kind, body in after[2:]] == [(kind, body) for _, kind, body in before[3:]]
    assert detect(stripped) == OGG


def test_an_ogg_vorbis_loses_its_comments_and_keeps_its_setup() -> None:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, 44100, 0, 64000, 0, 0xB8, 1)
    comments = b"\x03vorbis" + struct.pack("<I", 4) + b"Xiph" + struct.pack("<II", 1, 9 + len(HOME)) + (
        b"LOCATION=" + HOME) + b"\x01"
    setup = b"\x05vorbis" + bytes(300)
    # Comments and setup share the second page, as encoders write them; the audio begins on the third.
    second = ogg_page_at([len(comments), 255, len(setup) - 255], comments + setup, sequence=1)
    tagged = ogg_page(ident) + second + ogg_page_at([50], bytes(50), sequence=2, header_type=0x04, granule=1024)

    stripped = strip_recording_metadata(tagged, OGG)
    after = ogg_pages(stripped)
    assert HOME not in stripped
    empty = b"\x03vorbis" + bytes(8) + b"\x01"
    # One page a header packet now: the comments, then the setup; the audio page follows, numbered 3.
    assert [(seq, body) for seq, _, body in after] == [(0, ident), (1, empty), (2, setup), (3, bytes(50))]


def test_an_amr_recording_has_nothing_to_lose() -> None:
    assert strip_recording_metadata(amr_bytes(), AMR) == amr_bytes()


def test_a_photo_is_not_a_recording() -> None:
    with pytest.raises(ValueError):
        strip_recording_metadata(jpeg_bytes(), JPEG)


# --- quotas on unclaimed uploads ----------------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
MB = 1024 * 1024


def test_a_quota_takes_what_fits_and_says_when_to_come_back() -> None:
    assert over_quota(90 * MB, 10 * MB, 100 * MB, T0, T0, DAY, whose="source") is None
    refusal = over_quota(90 * MB, 10 * MB + 1, 100 * MB, T0, T0 + timedelta(hours=3), DAY, whose="source")
    assert refusal is not None
    # The oldest upload is forgotten 24 h after it came, 21 h from now: 75,600 s.
    assert refusal.retry_after == 75_600
    assert refusal.message == "您已上传但尚未提交的附件超过 100 MB。请先提交反映，或约 21 小时后再上传。"
    # Total: 10 min left (600 s) of the window; the message rounds up to whole minutes.
    total = over_quota(2048 * MB, 1, 2048 * MB, T0, T0 + DAY - timedelta(seconds=599), DAY, whose="total")
    assert total is not None and total.retry_after == 599
    assert total.message == "附件存储空间暂时已满，请约 10 分钟后再上传。"
    # Never less than a minute, even when the oldest upload is overdue for sweeping.
    late = over_quota(5, 1, 5, T0, T0 + 2 * DAY, DAY, whose="total")
    assert late is not None and late.retry_after == 60


def test_wait_text() -> None:
    assert [wait_text(s) for s in (60, 61, 3599, 3600, 3601, 86_400)] == [
        "1 分钟", "2 分钟", "60 分钟", "1 小时", "2 小时", "24 小时"]


def test_the_ledger_keeps_a_source_s_uploads_of_the_window_that_are_still_unclaimed() -> None:
    ledger = UnclaimedLedger(DAY, max_sources=2, max_per_source=3)
    for n in range(4):
        ledger.add("a", Held(f"a{n}", 10, T0 + timedelta(hours=n)))
    # At most three per source: the oldest went.
    assert [h.attachment_id for h in ledger.held("a", T0 + timedelta(hours=4))] == ["a1", "a2", "a3"]
    # a1 came at 09:00 and is forgotten at 09:00 the next day.
    assert [h.attachment_id for h in ledger.held("a", T0 + timedelta(hours=25))] == ["a2", "a3"]
    ledger.keep("a", {"a3"})
    assert [h.attachment_id for h in ledger.held("a", T0 + timedelta(hours=25))] == ["a3"]
    # At most two sources: the one not heard from longest goes.
    ledger.add("b", Held("b0", 1, T0))
    ledger.add("c", Held("c0", 1, T0))
    assert ledger.held("a", T0) == [] and [h.attachment_id for h in ledger.held("c", T0)] == ["c0"]
    ledger.keep("c", set())
    assert ledger.held("c", T0) == []
