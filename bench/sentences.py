"""Fresh text for the TTS benchmark: many distinct ten-word sentences that each start differently.

A server that caches audio (ours does, by piece of text, and the first piece of a request is
its first 3-4 words) answers a repeated sentence, or a new sentence with a known head, from
memory: a benchmark that rotates a few sentences then measures the cache, not synthesis.
Here every sentence is `opener + subject (2 words) + predicate (3 words) + place (4 words)`;
the (opener, subject) pairs are all different, so no two sentences share their first three
words, and so no head can be answered from a cache.

The order is fixed (a seeded shuffle): a run hands request *i* the same sentence whichever
server it goes to, and `Fresh` never hands out a sentence twice.
"""

from __future__ import annotations

import itertools
import random

OPENERS = [
    "Tonight", "Yesterday", "Apparently", "Suddenly", "Luckily", "Meanwhile", "Earlier", "Today",
    "Sometimes", "Usually", "Honestly", "Clearly", "Perhaps", "Recently", "Finally", "Somehow",
    "Again", "Later", "Outside", "Upstairs", "Downstairs", "Obviously", "Quietly", "Surprisingly",
]
SUBJECTS = [
    "the kettle", "my sister", "our neighbour", "a courier", "the cat", "your brother",
    "the gardener", "an engineer", "the postman", "my grandmother", "the plumber", "a stranger",
    "the baker", "our landlord", "the teacher", "a musician", "the doctor", "my cousin",
    "the painter", "a visitor", "the pilot", "our babysitter", "the farmer", "a student",
]
PREDICATES = [
    "was seen waiting", "left a parcel", "found the keys", "was humming softly",
    "dropped a glass", "painted a picture", "fixed the radio", "forgot an umbrella",
    "was reading quietly", "heard strange noises", "lost a glove", "planted some tulips",
    "baked fresh bread", "was singing loudly", "spilled the coffee", "opened every window",
]
PLACES = [
    "near the garden gate", "behind the old shed", "in the upstairs bathroom",
    "beside the kitchen window", "under the wooden table", "at the bus stop",
    "on the front porch", "inside the garage again", "next to the bookshelf",
    "by the river bank", "across the busy street", "in the living room",
    "at the train station", "outside the corner shop", "on the hallway stairs",
    "near the parking lot",
]
SEED = 20261129


def sentences() -> list[str]:
    """All sentences (576), in the fixed benchmark order; each 10 words, no shared first 3 words."""
    rng = random.Random(SEED)
    heads = list(itertools.product(OPENERS, SUBJECTS))
    rng.shuffle(heads)
    out = []
    for i, (opener, subject) in enumerate(heads):
        predicate = PREDICATES[(i * 7 + rng.randrange(len(PREDICATES))) % len(PREDICATES)]
        place = PLACES[(i * 5 + rng.randrange(len(PLACES))) % len(PLACES)]
        out.append(f"{opener} {subject} {predicate} {place}.")
    return out


class Fresh:
    """Hands out each sentence of `sentences()` once, in order; raises when they run out."""

    def __init__(self) -> None:
        self._all = sentences()
        self.used = 0

    def __len__(self) -> int:
        return len(self._all) - self.used

    def take(self, n: int = 1) -> list[str]:
        if n > len(self):
            raise RuntimeError(f"out of fresh sentences: {n} wanted, {len(self)} left of {len(self._all)}")
        out = self._all[self.used:self.used + n]
        self.used += n
        return out

    def one(self) -> str:
        return self.take(1)[0]

    def paragraph(self, sentences: int = 6) -> str:
        """About 60 words: `sentences` fresh sentences in a row."""
        return " ".join(self.take(sentences))

    def stream(self, *, mid_piece: bool) -> tuple[list[str], int]:
        """Two fresh sentences cut into 5 pieces, the way a language model's output arrives
        (cuts inside words). Sentence one is complete with piece 3 (index 2): at its very end,
        or, with `mid_piece`, followed in the same piece by the first letters of sentence two.
        -> (pieces, index of the piece completing sentence one)."""
        one, two = self.take(2)
        a, b = len(one) // 3 + 1, 2 * len(one) // 3 + 1  # inside words: "…lig" + "hts…"
        rest = " " + two
        carry = 6 if mid_piece else 0  # " Tomor" of " Tomorrow"
        half = carry + (len(rest) - carry) // 2 + 1
        pieces = [one[:a], one[a:b], one[b:] + rest[:carry], rest[carry:half], rest[half:]]
        assert "".join(pieces) == f"{one} {two}" and all(pieces)
        return pieces, 2
