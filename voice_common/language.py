"""Language codes, read the same way by every service.

Clients send `en`, `en-US`, `en_us` or `EN`. `language_tag` is the one normal form
(`en-us`); `primary_language` drops the region (`en`), which is what Whisper models name
their languages by; `language_matches` ranks a voice's language against a request's.
"""

from __future__ import annotations

import re

#: A language tag a request may carry (`en`, `en-US`, `pt_BR`, `zh-Hant-TW`).
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$")


def language_tag(code: str) -> str:
    """`en_US`, `en-us`, ` EN ` -> `en-us` / `en`: lower case, `-` between the parts."""
    return code.strip().replace("_", "-").lower()


def primary_language(code: str) -> str:
    """`en-US` -> `en`: the language alone, without region or script."""
    return language_tag(code).split("-")[0]


def language_matches(requested: str, offered: str) -> int:
    """2 = the same tag, 1 = the same primary language (`en` vs `en-gb`), 0 = no match."""
    req, off = language_tag(requested), language_tag(offered)
    if req == off:
        return 2
    return 1 if req.split("-")[0] == off.split("-")[0] else 0
