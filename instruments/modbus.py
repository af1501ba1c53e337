"""Modbus RTU framing: the requests and replies of the holding-register functions, their CRC, their lengths.

Implemented from the Modbus Organization's "MODBUS Application Protocol Specification V1.1b3" (section 6.3 Read
Holding Registers, 0x03; 6.6 Write Single Register, 0x06; 6.12 Write Multiple Registers, 0x10; section 7, Modbus
exception responses and codes) and "MODBUS over Serial Line Specification and Implementation Guide V1.02" (2.5.1
RTU transmission mode: frames delimited by at least 3.5 character times of silence; 6.2.2 the CRC-16, polynomial
0xA001 reflected, initial value 0xFFFF, sent low byte first).

A frame is: slave address (1-247), function code, data, CRC (2 bytes, low byte first). Registers are 16-bit,
big-endian. A reply's length follows from its function code: 0x03 carries a byte count after the function code
(3 + count + 2 bytes in all), 0x06 and 0x10 echo 4 bytes of the request (8 in all), an exception reply sets the
function code's high bit and carries one exception code (5 in all). `reply_length` is what a transport needs to
read a reply whole without a terminator. Drivers build requests here and parse replies here; twins (in
`simulators`) use the same definitions to parse requests and build replies.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from instruments.errors import DeviceError, ProtocolError

READ_HOLDING_REGISTERS = 0x03
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_REGISTERS = 0x10
FUNCTIONS = {
    READ_HOLDING_REGISTERS: "read holding registers",
    WRITE_SINGLE_REGISTER: "write single register",
    WRITE_MULTIPLE_REGISTERS: "write multiple registers",
}
EXCEPTION_BIT = 0x80

# Section 7 of the application protocol: the codes a slave answers with instead of doing the request.
EXCEPTION_CODES: dict[int, str] = {
    0x01: "illegal function (the device does not offer this function code)",
    0x02: "illegal data address (no such register, or not writable)",
    0x03: "illegal data value (the value is outside what the register takes)",
    0x04: "slave device failure (an unrecoverable error while performing the request)",
    0x05: "acknowledge (accepted, still being processed)",
    0x06: "slave device busy (processing a long command; try again later)",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
MAX_READ_COUNT = 125  # registers in one 0x03 request (application protocol 6.3)
MAX_WRITE_COUNT = 123  # registers in one 0x10 request (6.12)


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of `data` (serial line guide 6.2.2): init 0xFFFF, reflected polynomial 0xA001."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """A frame: the body followed by its CRC, low byte first."""
    return body + struct.pack("<H", crc16(body))


def check_crc(frame: bytes) -> bytes:
    """The body of a frame whose CRC is right; ProtocolError naming a bad CRC (line noise) or a short frame."""
    if len(frame) < 4:
        raise ProtocolError("Modbus frame shorter than 4 bytes", received=frame)
    body, (got,) = frame[:-2], struct.unpack("<H", frame[-2:])
    wanted = crc16(body)
    if got != wanted:
        raise ProtocolError(f"bad CRC: frame carries {got:04X}, its bytes give {wanted:04X}", received=frame)
    return body


def reply_length(received: bytes) -> int | None:
    """The length of the reply frame starting `received`, once its first bytes say (None until then).

    ProtocolError for a function code that none of our requests can be answered with (a garbled frame).
    """
    if len(received) < 2:
        return None
    function = received[1]
    if function & EXCEPTION_BIT and function & ~EXCEPTION_BIT in FUNCTIONS:
        return 5
    if function == READ_HOLDING_REGISTERS:
        return None if len(received) < 3 else 3 + received[2] + 2
    if function in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
        return 8
    raise ProtocolError(
        f"reply with function code {function:#04x}, which no request of ours is answered with", received=received
    )


def request_length(received: bytes) -> int | None:
    """The length of the request frame starting `received` (what a slave, or a twin, reads), None until known.

    An unknown function code gives the 4-byte minimum: the slave answers it with exception 01 once the line is
    quiet, as a real one does, and the twin reads it as a frame of its own."""
    if len(received) < 2:
        return None
    function = received[1]
    if function in (READ_HOLDING_REGISTERS, WRITE_SINGLE_REGISTER):
        return 8
    if function == WRITE_MULTIPLE_REGISTERS:
        return None if len(received) < 7 else 7 + received[6] + 2
    return 4


# --- requests (what a master sends) ---------------------------------------------------------------------------


def read_registers_request(slave: int, address: int, count: int = 1) -> bytes:
    if not 1 <= count <= MAX_READ_COUNT:
        raise ValueError(f"count {count} is outside 1-{MAX_READ_COUNT}")
    return with_crc(struct.pack(">BBHH", slave, READ_HOLDING_REGISTERS, address, count))


def write_register_request(slave: int, address: int, value: int) -> bytes:
    return with_crc(struct.pack(">BBHH", slave, WRITE_SINGLE_REGISTER, address, value & 0xFFFF))


def write_registers_request(slave: int, address: int, values: Sequence[int]) -> bytes:
    if not 1 <= len(values) <= MAX_WRITE_COUNT:
        raise ValueError(f"{len(values)} registers is outside 1-{MAX_WRITE_COUNT}")
    words = b"".join(struct.pack(">H", v & 0xFFFF) for v in values)
    return with_crc(struct.pack(">BBHHB", slave, WRITE_MULTIPLE_REGISTERS, address, len(values), len(words)) + words)


# --- replies (what a master reads) ----------------------------------------------------------------------------


def _reply_body(frame: bytes, slave: int, function: int, what: str) -> bytes:
    """The body of a reply to `function` from `slave`, after its CRC and exception are checked."""
    if not isinstance(frame, bytes | bytearray):
        raise ProtocolError("reply is not bytes", received=repr(frame))
    body = check_crc(bytes(frame))
    if body[0] != slave:
        raise ProtocolError(f"reply from slave {body[0]}, expected slave {slave}", received=frame)
    if body[1] == function | EXCEPTION_BIT:
        if len(body) != 3:
            raise ProtocolError("exception reply of the wrong length", received=frame)
        code = body[2]
        meaning = EXCEPTION_CODES.get(code, "an exception code the specification does not define")
        raise DeviceError(f"{what}: Modbus exception {code:02X}, {meaning}", code=f"{code:02X}")
    if body[1] != function:
        raise ProtocolError(f"reply to function {body[1]:#04x}, expected {function:#04x}", received=frame)
    return body


def parse_read_reply(frame: bytes, slave: int, count: int, what: str = "read") -> tuple[int, ...]:
    """The registers of a 0x03 reply (unsigned 16-bit). DeviceError for an exception reply, naming `what`;
    ProtocolError for a bad CRC, another slave or function, or a byte count that is not `count` registers."""
    body = _reply_body(frame, slave, READ_HOLDING_REGISTERS, what)
    if len(body) < 3 or body[2] != 2 * count or len(body) != 3 + 2 * count:
        raise ProtocolError(f"read reply does not carry {count} register(s)", received=frame)
    return struct.unpack(f">{count}H", body[3:])


def parse_write_reply(frame: bytes, slave: int, address: int, value: int, what: str = "write") -> None:
    """A 0x06 reply echoes the request: address and value as sent, or ProtocolError."""
    body = _reply_body(frame, slave, WRITE_SINGLE_REGISTER, what)
    if len(body) != 6 or struct.unpack(">HH", body[2:6]) != (address, value & 0xFFFF):
        raise ProtocolError(f"write reply does not echo register {address} = {value & 0xFFFF}", received=frame)


def parse_write_multiple_reply(frame: bytes, slave: int, address: int, count: int, what: str = "write") -> None:
    """A 0x10 reply carries the start address and the number of registers written."""
    body = _reply_body(frame, slave, WRITE_MULTIPLE_REGISTERS, what)
    if len(body) != 6 or struct.unpack(">HH", body[2:6]) != (address, count):
        raise ProtocolError(f"write reply does not confirm {count} register(s) from {address}", received=frame)


# --- requests as a slave reads them (for twins) ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as a slave parses it: address, function, first register and the count or values."""

    slave: int
    function: int
    address: int = 0
    count: int = 0
    values: tuple[int, ...] = ()


def parse_request(frame: bytes) -> Request:
    """A request frame; ProtocolError for a bad CRC or a malformed body (a slave stays silent on those)."""
    body = check_crc(frame)
    slave, function = body[0], body[1]
    if function == READ_HOLDING_REGISTERS and len(body) == 6:
        address, count = struct.unpack(">HH", body[2:6])
        return Request(slave, function, address, count)
    if function == WRITE_SINGLE_REGISTER and len(body) == 6:
        address, value = struct.unpack(">HH", body[2:6])
        return Request(slave, function, address, 1, (value,))
    if function == WRITE_MULTIPLE_REGISTERS and len(body) >= 7:
        address, count, size = *struct.unpack(">HH", body[2:6]), body[6]
        if size == 2 * count == len(body) - 7:
            return Request(slave, function, address, count, struct.unpack(f">{count}H", body[7:]))
        raise ProtocolError("write multiple request with a byte count that does not match", received=frame)
    if function not in FUNCTIONS:
        return Request(slave, function)
    raise ProtocolError("request of the wrong length for its function", received=frame)


def read_reply(slave: int, values: Sequence[int]) -> bytes:
    words = b"".join(struct.pack(">H", v & 0xFFFF) for v in values)
    return with_crc(struct.pack(">BBB", slave, READ_HOLDING_REGISTERS, len(words)) + words)


def echo_reply(slave: int, function: int, address: int, word: int) -> bytes:
    """The reply to 0x06 (register and value) or 0x10 (first register and count)."""
    return with_crc(struct.pack(">BBHH", slave, function, address, word & 0xFFFF))


def exception_reply(slave: int, function: int, code: int) -> bytes:
    return with_crc(struct.pack(">BBB", slave, function | EXCEPTION_BIT, code))


def to_signed(word: int) -> int:
    """A register read as a signed 16-bit integer (Eurotherm and most controllers send negative values so)."""
    return word - 0x10000 if word & 0x8000 else word
