"""How text becomes synthesis units: sentences, early heads, bounded pieces, fair scheduling."""

from __future__ import annotations

import threading

from wyoming_tts.scheduler import FairExecutor
from wyoming_tts.text import MAX_PIECE_CHARS, SentenceBuffer, bounded_pieces, split_head, split_sentences, text_pieces


def test_sentences_complete_at_once_even_mid_word_chunks():
    buffer = SentenceBuffer()
    assert buffer.add("Dr. Smith is in. The ki") == ["Dr. Smith is in."]
    assert buffer.add("tchen light is on.") == ["The kitchen light is on."]  # not held for the next chunk
    assert buffer.add(" Call Mr.") == []  # an abbreviation waits
    assert buffer.add(" Brown now") == [] and buffer.flush() == ["Call Mr. Brown now"]
    assert split_sentences("Hi! How are you? 良い天気です。はい") == ["Hi!", "How are you?", "良い天気です。", "はい"]


def test_the_first_words_of_a_stream_are_released_before_the_sentence_ends():
    buffer = SentenceBuffer(early_head=True)
    assert buffer.add("The living room lig") == []
    assert buffer.add("hts are now off and the ") == ["The living room lights"]
    assert buffer.add("doors are locked. Tomor") == ["are now off and the doors are locked."]
    assert buffer.add("row it rains a lot in the west and the ") == []  # only the first head is early
    assert buffer.flush() == ["Tomorrow it rains a lot in the west and the"]


def test_the_first_piece_is_cut_after_a_clause_or_a_few_words():
    assert split_head("Please turn off the lights in the living room right now.") == [
        "Please turn off", "the lights in the living room right now."]
    assert split_head("The washing machine has finished, please empty it soon.") == [
        "The washing machine has finished,", "please empty it soon."]
    assert split_head("Good evening, Sam.") == ["Good evening, Sam."]


def test_pieces_stay_bounded_whatever_the_text():
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 230)[:10000] + "x" * 500
    pieces = text_pieces(text)
    assert max(len(p) for p in pieces) <= MAX_PIECE_CHARS
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")  # nothing lost, nothing added
    clauses = bounded_pieces("one two three, " * 30)
    assert all(p.endswith(",") for p in clauses) and max(map(len, clauses)) <= MAX_PIECE_CHARS


def test_lower_piece_numbers_run_first():
    executor = FairExecutor(1)
    order, started, gate = [], threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        gate.wait()

    try:
        blocker = executor.submit(0, block)  # occupies the only worker while the others queue
        assert started.wait(60)  # it runs: the jobs below can only queue behind it
        jobs = [executor.submit(n, order.append, name) for n, name in ((5, "long-5"), (0, "new-0"), (1, "long-1"))]
        gate.set()
        blocker.result(60)
        for job in jobs:
            job.result(60)
        assert order == ["new-0", "long-1", "long-5"]
    finally:
        executor.shutdown()
    assert executor.submit(0, order.append, "late").cancelled()  # after shutdown nothing runs
