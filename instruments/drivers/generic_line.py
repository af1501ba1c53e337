"""The answers of peirce's generic line protocol, shared by the stand-in drivers that speak it (`generic-sputter`,
`generic-xrd`, `generic-powder-prep`): each answer is one line of text; `ERR <digit>` is the device refusing, the
digit's meaning in the driver's own table; `OK` acknowledges; `*IDN?` answers `<maker>,<model>,<serial>,<firmware>`.
A driver binds these to its table once (`LineAnswers`) and parses the rest of its answers itself."""

from __future__ import annotations

import re
from collections.abc import Mapping

from instruments.errors import DeviceError, ProtocolError

_ERR = re.compile(r"ERR ([0-9])")


def answer_text(line: object) -> str:
    """The answer's text, stripped; a reply that is not text is a protocol error."""
    if not isinstance(line, str):
        raise ProtocolError("answer is not text", received=repr(line))
    return line.strip()


class LineAnswers:
    """The answers every generic-protocol device gives, for one device: `device` names it in its errors
    ("controller error 3: …"), `errors` gives each `ERR` code's meaning."""

    def __init__(self, device: str, errors: Mapping[str, str]) -> None:
        self.device = device
        self.errors = errors

    def text(self, line: object) -> str:
        """The answer's text; an `ERR <code>` raised as a DeviceError with the code's meaning."""
        text = answer_text(line)
        match = _ERR.fullmatch(text)
        if match:
            code = match.group(1)
            raise DeviceError(f"{self.device} error {code}: {self.errors.get(code, 'unknown')}", code=code)
        return text

    def ok(self, line: str) -> None:
        text = self.text(line)
        if text != "OK":
            raise ProtocolError("answer is not OK", received=text)

    def identity(self, line: str) -> dict[str, str]:
        text = self.text(line)
        fields = [field.strip() for field in text.split(",")]
        if len(fields) != 4 or not all(fields):
            raise ProtocolError("*IDN? answer is not <maker>,<model>,<serial>,<firmware>", received=text)
        return dict(zip(("manufacturer", "model", "serial", "firmware"), fields, strict=True))
