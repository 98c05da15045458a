"""An independent reader of TensorBoard event files, for test/run/tensorboard.test.ts (no tensorboard/tensorflow here).

TFRecord framing as tensorflow/core/lib/io/record_reader.cc reads it: uint64 length, uint32 masked crc32c(length),
data, uint32 masked crc32c(data), little-endian; masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8 mod 2^32. CRC-32C is
computed here from its reflected polynomial 0x82F63B78 with a 256-entry table (not the library the writer uses).
Protobuf wire format parsed by hand (varints, fixed32/64, length-delimited) with the field numbers of
tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto. Prints the events as JSON.
"""
import json
import struct
import sys

TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf: bytes, i: int):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, i


def fields(buf: bytes):
    """(field number, wire type, value) for each field of a message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def event(buf: bytes) -> dict:
    out = {}
    for num, wt, v in fields(buf):
        if num == 1 and wt == 1:
            out["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2 and wt == 0:
            out["step"] = v if v < 2**63 else v - 2**64
        elif num == 3 and wt == 2:
            out["file_version"] = v.decode()
        elif num == 5 and wt == 2:
            values = []
            for vn, vwt, vv in fields(v):
                assert vn == 1 and vwt == 2, (vn, vwt)
                item = {}
                for f, fwt, fv in fields(vv):
                    if f == 1:
                        item["tag"] = fv.decode()
                    elif f == 2 and fwt == 5:
                        item["simple_value"] = struct.unpack("<f", fv)[0]
                values.append(item)
            out["summary"] = values
        elif num == 7 and wt == 2:
            out["session_log"] = {("status" if f == 1 else str(f)): fv for f, _, fv in fields(v)}
        else:
            out[f"field_{num}"] = True
    return out


def read(path: str) -> list:
    data = open(path, "rb").read()
    i, events = 0, []
    while i < len(data):
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (crc_len,) = struct.unpack("<I", data[i + 8:i + 12])
        assert crc_len == masked(header), f"length crc at byte {i}"
        body = data[i + 12:i + 12 + length]
        (crc_body,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        assert crc_body == masked(body), f"data crc at byte {i}"
        events.append(event(body))
        i += 16 + length
    return events


if __name__ == "__main__":
    if sys.argv[1] == "--crc":
        print(json.dumps({"crc32c": crc32c(sys.argv[2].encode()), "masked": masked(sys.argv[2].encode())}))
    else:
        print(json.dumps([read(p) for p in sys.argv[1:]]))
