"""Cutting text into what a backend synthesizes at once: sentences, then bounded pieces.

Speaking sentence by sentence gives early first audio and flat memory; a text
without punctuation is cut at clauses, then words, so no piece exceeds
MAX_PIECE_CHARS. `SentenceBuffer` does the same for text that arrives in
chunks split anywhere (mid-word), releasing each sentence as soon as it is
known to be complete.
"""

from __future__ import annotations

import re

#: Piper's peak memory grows with the piece (about +200 MB at 140 characters, +350 MB at 300);
#: two workers at once must stay far below the 600 MB budget.
MAX_PIECE_CHARS = 140
#: The first piece of a request is cut after HEAD_WORDS (a few words, at a phrase boundary)
#: when it has at least SPLIT_FROM words: 3 words synthesize in ~45 ms, 10 in ~115 ms.
HEAD_WORDS = (3, 4)
SPLIT_FROM = 7
#: Words that begin a phrase: cutting before them keeps the prosody natural.
_PHRASE_STARTERS = {
    "the", "a", "an", "in", "on", "at", "to", "of", "for", "with", "from", "into", "by", "about",
    "and", "or", "but", "so", "because", "when", "while", "if", "that", "which", "who", "is", "are",
    "was", "were", "will", "this", "my", "your", "our", "their", "his", "her", "its",
}

_TERMINALS = ".!?…"
#: CJK full stops end a sentence without a following space.
_CJK_TERMINALS = "。！？"
#: A sentence ends at terminal punctuation (plus closing quotes/brackets) followed by whitespace,
#: or at a CJK terminal.
_SENTENCE_END = re.compile(r"(?:[.!?…]+[\"'”’)\]]*(?=\s)|[。！？]+[\"'”’)\]」』]*)")
_CLAUSE_END = re.compile(r"[,;:，、；：]+(?=\s)|[，、；：]+")
#: A period right after a digit at the very end of the text so far: "3." may become "3.5".
_DIGIT_PERIOD_AT_END = re.compile(r"\d\.$")
#: Words whose final period is not a sentence end.
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "vs", "e.g", "i.e", "approx"}
_CLOSERS = "\"'”’)]」』"


def is_speakable(text: str) -> bool:
    """True if there is anything to say (a letter or digit), not only punctuation or spaces."""
    return any(ch.isalnum() for ch in text)


def _is_abbreviation(text: str, end: int) -> bool:
    """True if the period ending at `end` closes a known abbreviation ('Dr.')."""
    if text[end - 1] != ".":
        return False
    return re.split(r"\s", text[:end].rstrip("."))[-1].lower() in _ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Complete text -> sentences (whitespace-trimmed, empty ones dropped)."""
    buffer = SentenceBuffer()
    return buffer.add(text) + buffer.flush()


class SentenceBuffer:
    """Accumulates streamed text and releases complete sentences.

    A sentence is complete when terminal punctuation is followed by whitespace,
    or when a chunk ends with `.`, `!` or `?` (a finished sentence must not wait
    for the next chunk). A known abbreviation does wait, and so does a period right
    after a digit: "It is 3" + "." + "5 degrees." is one sentence, "It is 3.5
    degrees.", so "3." is held until the next chunk (or the end of the stream) shows
    whether a digit follows. Text that grows past
    `limit` without a sentence end is released at a clause or word boundary.
    With `early_head`, the first few words of a stream are released as soon as
    SPLIT_FROM - 1 words are complete, before the first sentence ends, so the
    first audio is ready when that sentence's last piece arrives.
    """

    def __init__(self, limit: int = MAX_PIECE_CHARS, early_head: bool = False) -> None:
        self._pending = ""
        self._limit = limit
        self._want_head = early_head

    def add(self, chunk: str) -> list[str]:
        self._pending += chunk
        sentences: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self._pending):
            end = match.end()
            if _is_abbreviation(self._pending, match.start() + 1):
                continue
            sentences.append(self._pending[start:end])
            start = end
        rest = self._pending[start:]
        stripped = rest.rstrip().rstrip(_CLOSERS)
        if (stripped.endswith(tuple(_TERMINALS + _CJK_TERMINALS)) and not _is_abbreviation(stripped, len(stripped))
                and not _DIGIT_PERIOD_AT_END.search(rest)):
            sentences.append(rest)
            rest = ""
        if self._want_head and not sentences:
            head, rest = _early_head(rest)
            sentences += head
        self._want_head = self._want_head and not sentences
        while len(rest) > self._limit:  # no sentence end in sight: release a bounded piece
            cut = _cut_point(rest, self._limit)
            sentences.append(rest[:cut])
            rest = rest[cut:]
        self._pending = rest
        return [s.strip() for s in sentences if s.strip()]

    def flush(self) -> list[str]:
        """The text still pending at the end of the stream, as a last sentence."""
        rest, self._pending = self._pending.strip(), ""
        return [rest] if rest else []


def _cut_point(text: str, limit: int) -> int:
    """Where to cut an over-long unfinished sentence: last clause end, else last space."""
    clause_ends = [m.end() for m in _CLAUSE_END.finditer(text, limit // 3, limit)]
    if clause_ends:
        return clause_ends[-1]
    space = text.rfind(" ", 0, limit)
    return space if space > 0 else limit


def bounded_pieces(sentence: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    """A sentence -> pieces of at most `limit` characters: clauses first, then words."""
    sentence = " ".join(sentence.split())
    if len(sentence) <= limit:
        return [sentence] if sentence else []
    clauses, start = [], 0
    for match in _CLAUSE_END.finditer(sentence):
        clauses.append(sentence[start:match.end()].strip())
        start = match.end()
    clauses.append(sentence[start:].strip())
    pieces: list[str] = []
    for clause in filter(None, clauses):
        for part in _split_words(clause, limit) if len(clause) > limit else [clause]:
            if pieces and len(pieces[-1]) + 1 + len(part) <= limit:
                pieces[-1] = f"{pieces[-1]} {part}"
            else:
                pieces.append(part)
    return pieces


def _split_words(text: str, limit: int) -> list[str]:
    out: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > limit:  # one absurdly long "word": hard cut
            if current:
                out.append(current)
                current = ""
            out.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def split_head(piece: str) -> list[str]:
    """The first piece of a request -> [a short head, the rest], so first audio comes early."""
    words = piece.split()
    if len(words) < SPLIT_FROM:
        return [piece]
    cut = _head_cut(words)
    return [" ".join(words[:cut]), " ".join(words[cut:])]


def _head_cut(words: list[str]) -> int:
    """Words in the head: through a clause end within HEAD_WORDS[1] + 1 words, else up to
    the first phrase-starting word in the HEAD_WORDS range, else HEAD_WORDS[1]."""
    low, high = HEAD_WORDS
    cut = next((i + 1 for i in range(1, high + 1) if words[i][-1] in ",;:"), None)
    if cut is None:
        cut = next((i for i in range(low, high + 1) if words[i].lower() in _PHRASE_STARTERS), high)
    return cut


def _early_head(text: str) -> tuple[list[str], str]:
    """([head], rest) once SPLIT_FROM - 1 complete words are pending, else ([], text)."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if spans and spans[-1][1] == len(text):
        spans.pop()  # the last word may still be growing
    if len(spans) < SPLIT_FROM - 1:
        return [], text
    words = [text[a:b] for a, b in spans]
    cut = _head_cut(words + [""])
    return [" ".join(words[:cut])], text[spans[cut - 1][1]:]


def ends_sentence(text: str) -> bool:
    """True if `text` ends at a sentence end (terminal punctuation, not an abbreviation),
    false for a head, clause or word group cut from a longer sentence."""
    stripped = text.rstrip().rstrip(_CLOSERS)
    return stripped.endswith(tuple(_TERMINALS + _CJK_TERMINALS)) and not _is_abbreviation(stripped, len(stripped))


def text_pieces(text: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    """Complete text -> speakable bounded pieces, in order."""
    return [p for s in split_sentences(text) for p in bounded_pieces(s, limit) if is_speakable(p)]
