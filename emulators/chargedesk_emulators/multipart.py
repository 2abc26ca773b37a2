"""Read a `multipart/form-data` body with the standard library (no python-multipart needed)."""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def parse_form(content_type: str, body: bytes) -> list[Part]:
    """The parts of a form body, in order; ValueError when it is not multipart/form-data."""
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ValueError(f"not a multipart/form-data body: {content_type!r}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("multipart body without parts")
    parts = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data":
            raise ValueError("a part without Content-Disposition: form-data")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a form part without a name")
        data = part.get_payload(decode=True)
        parts.append(
            Part(
                name=name,
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=data if isinstance(data, bytes) else b"",
            )
        )
    return parts
