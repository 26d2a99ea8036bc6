"""One contract across the three services: error codes, configuration, shared rules.

Each test here pins a place where the services once disagreed with each other or with
their docs (issue 13).
"""

from __future__ import annotations

import re

from helpers import REPO
from voice_common.errors import MqttCode, WyomingCode


def _error_table(doc: str, heading: str) -> set[str]:
    """The codes in the first table under `heading` in a Markdown file."""
    text = (REPO / doc).read_text()
    section = text.split(heading, 1)[1]
    section = re.split(r"^#+ ", section, maxsplit=1, flags=re.M)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))


def test_every_wire_error_code_is_documented_and_only_those():
    stt = _error_table("README.md", "### Errors")
    tts = _error_table("docs/tts.md", "## Errors")
    assert stt | tts == {code.value for code in WyomingCode}
    assert _error_table("docs/mqtt.md", "## Errors") == {code.value for code in MqttCode}


def test_errors_take_text_then_code():
    from broker.replies import SessionError
    from voice_common.protocol import ProtocolError

    wyoming = ProtocolError("audio-start received twice")
    mqtt = SessionError("payload is not valid JSON")
    assert (wyoming.text, wyoming.code) == ("audio-start received twice", "bad_request")
    assert mqtt.payload() == {"code": "invalid_request", "message": "payload is not valid JSON"}
    assert SessionError("x", MqttCode.BUSY).payload()["code"] == "busy"
