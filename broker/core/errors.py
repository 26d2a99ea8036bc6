"""The one error a session or a request check raises: `SessionError(text, code)`.

Every front renders it in its own wire format (MQTT `result/error`, an HTTP status and
JSON body, a WebSocket message); the codes are `MqttCode`, the API's error vocabulary
(the name is historical: the MQTT API defined them first).
"""

from __future__ import annotations

from voice_common.errors import MqttCode, WireError


class SessionError(WireError):
    """Refuses or ends a request: `text` for people, then `code` for programs."""

    code: MqttCode

    def __init__(self, text: str, code: MqttCode = MqttCode.INVALID_REQUEST) -> None:
        super().__init__(text, code)

    def payload(self) -> dict[str, str]:
        """The JSON body every front sends for an error: {"code", "message"}."""
        return {"code": self.code.value, "message": self.text}
