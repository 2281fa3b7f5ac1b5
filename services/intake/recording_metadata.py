"""Voice recordings without their metadata, as photos leave without EXIF. No I/O.

Recorders and phones write who and where into their files: ID3 tags in MP3 (artist, comments,
sometimes a cover picture), RIFF INFO and Broadcast Wave chunks in WAV (originator, date),
`udta`/`meta` boxes in MP4/M4A (the device model, the GPS position as `©xyz`), Tags, Attachments
and a Title in WebM, and comment headers in Ogg. The audio itself is left as it is: nothing is
decoded or re-encoded. Where a container's offsets point into the file (MP4 chunk offsets, WebM
seek entries), a removed part is overwritten in place by padding of the same size (`free` boxes,
Void elements), so every offset stays right.

`strip_recording_metadata` raises ValueError, with a message fit for the sender, when the container
cannot be walked.
"""

from __future__ import annotations

import struct
import zlib

from services.intake.attachments import _EBML_HEADER, _MKV_CLUSTER, _MKV_SEGMENT, Detected, _ebml_element, detect

_DAMAGED = "录音文件已损坏或格式不受支持"
_MAX_ITEMS = 100_000


def strip_recording_metadata(data: bytes, detected: Detected) -> bytes:
    """The recording with its metadata removed (or blanked), still the same type as `detected` says."""
    strip = _STRIPPERS.get(detected.extension)
    if detected.kind != "voice" or strip is None:
        raise ValueError("该文件不是录音")
    try:
        out = strip(data)
    except (struct.error, IndexError, _Damaged):
        raise ValueError(_DAMAGED) from None
    # Cutting must never turn a recording into something else (or into nothing a player can open).
    if detect(out) != detected:
        raise ValueError(_DAMAGED)
    return out


class _Damaged(Exception):
    pass


def _as_is(data: bytes) -> bytes:
    # AMR files are frames after a magic number: nothing but sound.
    return data


# ---- MP3 ------------------------------------------------------------------------------------------


def _syncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]


def _strip_mp3(data: bytes) -> bytes:
    start = 0
    # ID3v2 tags in front (some taggers write more than one), each with optional zero padding after it.
    while data[start:start + 3] == b"ID3" and start + 10 <= len(data):
        footer = 10 if data[start + 5] & 0x10 else 0
        start += 10 + _syncsafe(data[start + 6:start + 10]) + footer
        while start < len(data) and data[start] == 0:
            start += 1
    end = len(data)
    # Tags at the end, in whatever order taggers stacked them: ID3v1 (and its extended block), APEv2, an appended
    # ID3v2 (found by its footer "3DI") and Lyrics3v2.
    for _ in range(16):
        before = end
        if end - 128 >= start and data[end - 128:end - 125] == b"TAG":
            end -= 128
            if end - 227 >= start and data[end - 227:end - 223] == b"TAG+":
                end -= 227
        if end - 32 >= start and data[end - 32:end - 24] == b"APETAGEX":
            size, flags = struct.unpack("<I4xI", data[end - 20:end - 8])
            end -= size + (32 if flags & 0x80000000 else 0)
        if end - 10 >= start and data[end - 10:end - 7] == b"3DI":
            end -= _syncsafe(data[end - 4:end]) + 20
        if end - 15 >= start and data[end - 9:end] == b"LYRICS200" and data[end - 15:end - 9].isdigit():
            end -= int(data[end - 15:end - 9]) + 15
        if end == before:
            break
    if end <= start:
        raise _Damaged
    return data[start:end]


# ---- WAV ------------------------------------------------------------------------------------------

# What a player needs: the format, the samples, and for compressed formats the sample count.
_WAV_KEPT = frozenset({b"fmt ", b"data", b"fact"})


def _strip_wav(data: bytes) -> bytes:
    (riff_size,) = struct.unpack("<I", data[4:8])
    # Bytes past the RIFF's own size are no part of it; recorders that never went back to fill the size in leave
    # it at 0 or 0xFFFFFFFF, and then the file's end is the RIFF's.
    end = len(data) if riff_size < 4 or 8 + riff_size > len(data) else 8 + riff_size
    kept = []
    at = 12
    while at + 8 <= end:
        if len(kept) > _MAX_ITEMS:
            raise _Damaged
        chunk, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        body_end = at + 8 + size
        if body_end > end:
            if chunk != b"data":
                raise _Damaged
            # A recording cut short, or one whose size was never filled in: the samples run to the end.
            body_end, size = end, end - at - 8
        if chunk in _WAV_KEPT:
            kept.append(struct.pack("<4sI", chunk, size) + data[at + 8:body_end] + (b"\x00" if size & 1 else b""))
        at = body_end + (size & 1)
    if not any(k.startswith(b"fmt ") for k in kept) or not any(k.startswith(b"data") for k in kept):
        raise _Damaged
    body = b"WAVE" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# ---- MP4 / M4A ------------------------------------------------------------------------------------

# Boxes that hold metadata rather than sound: user data (©xyz is the GPS position, ©mak the maker), iTunes-style
# `meta`, and `uuid` boxes (XMP lives in one).
_BMFF_METADATA = frozenset({b"udta", b"meta", b"uuid"})


def _bmff_boxes(data: bytes | bytearray, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, box start, body start, box end) of the boxes filling data[start:end]; _Damaged when they do not."""
    out: list[tuple[bytes, int, int, int]] = []
    at = start
    while at < end:
        if at + 8 > end or len(out) >= _MAX_ITEMS:
            raise _Damaged
        (size,) = struct.unpack(">I", data[at:at + 4])
        kind, body = bytes(data[at + 4:at + 8]), at + 8
        if size == 1:
            if at + 16 > end:
                raise _Damaged
            (size,) = struct.unpack(">Q", data[at + 8:at + 16])
            body = at + 16
        elif size == 0:
            size = end - at
        if size < body - at or at + size > end:
            raise _Damaged
        out.append((kind, at, body, at + size))
        at += size
    return out


def _blank_box(data: bytearray, start: int, body: int, end: int) -> None:
    # The size field stays; the type becomes `free` (space to skip) and the body zeros.
    data[start + 4:start + 8] = b"free"
    data[body:end] = bytes(end - body)


def _strip_mp4(data: bytes) -> bytes:
    out = bytearray(data)
    for kind, start, body, end in _bmff_boxes(out, 0, len(out)):
        if kind in _BMFF_METADATA:
            _blank_box(out, start, body, end)
        elif kind == b"moov":
            for inner, s, b, e in _bmff_boxes(out, body, end):
                if inner in _BMFF_METADATA:
                    _blank_box(out, s, b, e)
                elif inner == b"trak":
                    for leaf, s2, b2, e2 in _bmff_boxes(out, b, e):
                        if leaf in _BMFF_METADATA:
                            _blank_box(out, s2, b2, e2)
    return bytes(out)


# ---- WebM -----------------------------------------------------------------------------------------

_MKV_INFO = 0x1549A966
_MKV_TITLE = 0x7BA9
_MKV_DATE = 0x4461
# Segment children that hold metadata: Tags, Attachments (whole files), Chapters (named points).
_MKV_METADATA = frozenset({0x1254C367, 0x1941A469, 0x1043A770})
# Every Segment child: where a Cluster of unknown size ends, one of these begins.
_MKV_TOP = frozenset({0x114D9B74, _MKV_INFO, 0x1654AE6B, _MKV_CLUSTER, 0x1C53BB6B, *_MKV_METADATA})


def _void(data: bytearray, start: int, end: int) -> None:
    """Overwrite data[start:end] with one Void element (0xEC) of exactly that length."""
    length = end - start
    if length < 2:
        raise _Damaged
    width = 8 if length >= 9 else length - 1
    body = length - 1 - width
    # A size of `width` bytes: the length marker bit, then the value.
    size = ((1 << (7 * width)) | body).to_bytes(width, "big")
    data[start:end] = b"\xec" + size + bytes(body)


def _strip_webm(data: bytes) -> bytes:
    out = bytearray(data)
    header = _ebml_element(out, 0)
    if header is None or header[0] != _EBML_HEADER or header[2] is None:
        raise _Damaged
    segment = _ebml_element(out, header[2])
    if segment is None or segment[0] != _MKV_SEGMENT:
        # The header alone (a recording stopped at once): there is nothing else to strip.
        return bytes(out)
    at = segment[1]
    stop = len(out) if segment[2] is None else min(segment[2], len(out))
    for _ in range(_MAX_ITEMS):
        element = _ebml_element(out, at) if at < stop else None
        if element is None:
            break
        kind, body, end = element
        if end is None:
            if kind != _MKV_CLUSTER:
                break
            end = _unknown_cluster_end(out, body, stop)
        end = min(end, stop)
        if kind in _MKV_METADATA:
            _void(out, at, end)
        elif kind == _MKV_INFO:
            _strip_info(out, body, end)
        at = end
    return bytes(out)


def _strip_info(data: bytearray, start: int, end: int) -> None:
    at = start
    while at < end:
        element = _ebml_element(data, at)
        if element is None or element[2] is None or element[2] > end:
            return
        if element[0] in (_MKV_TITLE, _MKV_DATE):
            _void(data, at, element[2])
        at = element[2]


def _unknown_cluster_end(data: bytearray, start: int, stop: int) -> int:
    """Where a Cluster of unknown size (what browsers write while recording) ends: at the next Segment child."""
    at = start
    for _ in range(_MAX_ITEMS):
        element = _ebml_element(data, at) if at < stop else None
        if element is None or element[0] in _MKV_TOP or element[2] is None:
            return min(at, stop)
        at = element[2]
    raise _Damaged


# ---- Ogg ------------------------------------------------------------------------------------------


# Ogg's CRC-32 is the unreflected one (polynomial 0x04C11DB7, initial value 0, no final XOR); zlib's is reflected.
# Reflecting every input byte and the result turns one into the other, at zlib's speed: a renumbered 10 MB file
# needs every page's checksum again.
_REFLECT = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes | bytearray) -> int:
    raw = zlib.crc32(bytes(page).translate(_REFLECT), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def _ogg_pages(data: bytes) -> list[tuple[int, int, bytes, int]]:
    """(header type, serial, segment table, body start) of each page, in order; _Damaged on a broken page."""
    pages = []
    at = 0
    while at < len(data):
        if data[at:at + 4] != b"OggS" or at + 27 > len(data) or len(pages) >= _MAX_ITEMS:
            raise _Damaged
        header_type = data[at + 5]
        (serial,) = struct.unpack("<I", data[at + 14:at + 18])
        count = data[at + 26]
        table = data[at + 27:at + 27 + count]
        body = at + 27 + count
        if len(table) != count or body + sum(table) > len(data):
            raise _Damaged
        pages.append((header_type, serial, table, body))
        at = body + sum(table)
    return pages


def _empty_comments(packet: bytes) -> bytes:
    """The comment header with no vendor string and no comments, keeping the codec's own framing."""
    if packet.startswith(b"OpusTags"):
        return b"OpusTags" + struct.pack("<II", 0, 0)
    if packet.startswith(b"\x03vorbis"):
        return b"\x03vorbis" + struct.pack("<II", 0, 0) + b"\x01"  # the framing bit
    raise _Damaged


def _flac_block(packet: bytes) -> bytes:
    # A FLAC metadata block: last-block flag and type (1 byte), 24-bit length, body. Comments become an empty
    # comment block, pictures and application data become empty padding; the number of blocks stays.
    last, kind = packet[0] & 0x80, packet[0] & 0x7F
    if kind == 4:
        body = struct.pack("<II", 0, 0)
        return bytes([last | 4]) + len(body).to_bytes(3, "big") + body
    if kind in (2, 6):
        return bytes([last | 1]) + b"\x00\x00\x00"
    return packet


def _strip_ogg(data: bytes) -> bytes:
    pages = _ogg_pages(data)
    serial = pages[0][1]
    if any(p[1] != serial for p in pages):
        # Several logical streams (chained or multiplexed): not what a voice recorder writes.
        raise _Damaged
    first = data[pages[0][3]:pages[0][3] + sum(pages[0][2])]
    if first.startswith(b"OpusHead"):
        headers = 2
    elif first.startswith(b"\x01vorbis"):
        headers = 3
    elif first.startswith(b"\x7fFLAC") and len(first) >= 9:
        headers = 1 + struct.unpack(">H", first[7:9])[0]
    elif first.startswith(b"Speex   ") and len(first) >= 72:
        headers = 2 + struct.unpack("<I", first[68:72])[0]
    else:
        raise _Damaged
    # The header packets after the first, from the pages that carry them; the audio begins on a fresh page.
    packets: list[bytes] = []
    current = bytearray()
    index = 1
    while len(packets) < headers - 1:
        if index >= len(pages):
            raise _Damaged
        _, _, table, body = pages[index]
        at = body
        for lace in table:
            current += data[at:at + lace]
            at += lace
            if lace < 255:
                packets.append(bytes(current))
                current = bytearray()
        index += 1
    if current or len(packets) != headers - 1:
        raise _Damaged  # audio sharing a page with the headers
    if first.startswith(b"Speex   "):
        packets[0] = struct.pack("<II", 0, 0)
    elif first.startswith(b"\x7fFLAC"):
        packets = [_flac_block(p) for p in packets]
    else:
        packets[0] = _empty_comments(packets[0])
    first_end = pages[1][3] - 27 - len(pages[1][2]) if len(pages) > 1 else len(data)
    out = bytearray(data[:first_end])
    sequence = 1
    for packet in packets:
        for page in _paginate(packet, serial, sequence):
            out += page
            sequence += 1
    for _, _, table, body in pages[index:]:
        start = body - 27 - len(table)
        page = bytearray(data[start:body + sum(table)])
        page[18:22] = struct.pack("<I", sequence)
        page[22:26] = b"\x00\x00\x00\x00"
        page[22:26] = struct.pack("<I", _ogg_crc(page))
        out += page
        sequence += 1
    return bytes(out)


def _paginate(packet: bytes, serial: int, sequence: int) -> list[bytes]:
    """A header packet in pages of its own: up to 255 lacing values a page, continued pages flagged 0x01."""
    laces = [255] * (len(packet) // 255) + [len(packet) % 255]
    pages = []
    at = 0
    first = True
    while laces:
        table, laces = laces[:255], laces[255:]
        size = sum(table)
        # A page that ends inside the packet has no granule position (-1); header pages that end one have 0.
        granule = 0 if not laces else 0xFFFFFFFFFFFFFFFF
        header = b"OggS" + bytes([0, 0 if first else 1]) + struct.pack("<QII", granule, serial, sequence)
        page = bytearray(header + b"\x00\x00\x00\x00" + bytes([len(table)]) + bytes(table) + packet[at:at + size])
        page[22:26] = struct.pack("<I", _ogg_crc(page))
        pages.append(bytes(page))
        at += size
        sequence += 1
        first = False
    return pages


_STRIPPERS = {"amr": _as_is, "mp3": _strip_mp3, "wav": _strip_wav, "m4a": _strip_mp4, "webm": _strip_webm,
              "ogg": _strip_ogg}
