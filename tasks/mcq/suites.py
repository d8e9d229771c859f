"""Multiple-choice questions, and the offline suites this project generates.

Every suite is drawn with a seed and split into a calibration part (the only data a method may fit on)
and a test part. Gold positions are balanced: with k options each position holds the answer for the same
share of questions (up to one), so a model that always says "A" scores exactly 1/k and its anchoring shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.errors import UserError

LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class Question:
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices

    def rotated(self, shift: int) -> Question:
        """The same question with the options moved `shift` places forward (option 0 goes to `shift`)."""
        k = len(self.choices)
        order = [(i - shift) % k for i in range(k)]
        return Question(self.question, tuple(self.choices[i] for i in order), (self.answer + shift) % k)


@dataclass(frozen=True)
class Split:
    calibration: list[Question]
    test: list[Question]


def place_gold(questions: Sequence[Question], rng: np.random.Generator) -> list[Question]:
    """Each question's options shuffled so that gold positions are balanced across the list."""
    if not questions:
        return []
    k = len(questions[0].choices)
    targets = rng.permutation(np.arange(len(questions)) % k)
    out = []
    for q, target in zip(questions, targets, strict=True):
        others = [c for i, c in enumerate(q.choices) if i != q.answer]
        others = [others[i] for i in rng.permutation(len(others))]
        others.insert(int(target), q.choices[q.answer])
        out.append(replace(q, choices=tuple(others), answer=int(target)))
    return out


def check_sizes(calibration: int, test: int) -> None:
    """Split sizes any suite could give: a negative count would slice from the end (an empty test set)."""
    if calibration < 0 or test < 1:
        raise UserError(
            f"calibration={calibration}, test={test}: expected at least 0 calibration and 1 test question"
        )


def check_counts(available: int, calibration: int, test: int) -> None:
    """A split the suite can give."""
    check_sizes(calibration, test)
    if calibration + test > available:
        raise UserError(
            f"the suite has {available} questions; calibration={calibration} + test={test} is more"
        )


def split(questions: Sequence[Question], calibration: int, test: int, rng: np.random.Generator) -> Split:
    """Disjoint calibration and test draws, gold positions balanced within each."""
    check_counts(len(questions), calibration, test)
    order = rng.permutation(len(questions))
    cal = [questions[i] for i in order[:calibration]]
    tst = [questions[i] for i in order[calibration : calibration + test]]
    return Split(place_gold(cal, rng), place_gold(tst, rng))


def in_order(questions: Sequence[Question], calibration: int, test: int) -> Split:
    """The first `calibration` questions and the `test` after them, options as given: a split another
    harness can reproduce question by question (gold positions are the file's, not balanced)."""
    check_counts(len(questions), calibration, test)
    return Split(list(questions[:calibration]), list(questions[calibration : calibration + test]))


# --- offline suites ------------------------------------------------------------------------------------

NAMES = [
    "Mary",
    "John",
    "Lisa",
    "David",
    "Sarah",
    "Michael",
    "Emma",
    "James",
    "Anna",
    "Robert",
    "Laura",
    "Daniel",
    "Kate",
    "Thomas",
    "Julia",
    "Peter",
    "Alice",
    "Mark",
    "Rachel",
    "Paul",
    "Susan",
    "Kevin",
    "Linda",
    "Brian",
    "Karen",
    "Steven",
    "Helen",
    "Jason",
    "Nancy",
    "George",
    "Amy",
    "Eric",
    "Emily",
    "Adam",
    "Grace",
    "Henry",
    "Chloe",
    "Oliver",
    "Lucy",
    "Samuel",
]
PLACES = [
    "store",
    "school",
    "station",
    "hospital",
    "garden",
    "office",
    "restaurant",
    "house",
    "park",
    "library",
]
OBJECTS = ["book", "ring", "drink", "snack", "computer", "necklace", "basketball", "bone", "kiss", "letter"]
IOI_TEMPLATES = (
    "Then, {s} and {io} went to the {place}. {s} gave a {obj} to",
    "After the lunch, {s} and {io} went to the {place}. {s} gave a {obj} to",
    "Friends {s} and {io} found a {obj} at the {place}. {s} gave it to",
    "While {s} and {io} were working at the {place}, {s} gave a {obj} to",
    "Then, {s} and {io} had a lot of fun at the {place}. {s} gave a {obj} to",
    "Afterwards, {s} and {io} went to the {place}. {s} handed a {obj} to",
    "When {s} and {io} arrived at the {place}, {s} passed a {obj} to",
    "The {place} {s} and {io} went to had a {obj}. {s} gave it to",
)


def ioi(count: int, options: int, rng: np.random.Generator) -> list[Question]:
    """Indirect-object identification in the paper's format: who received the object? The gold answer is
    the second name of the story (the indirect object); the subject is always a distractor, and with more
    than two options the rest are names from outside the story."""
    out = []
    for _ in range(count):
        names = [NAMES[i] for i in rng.choice(len(NAMES), size=max(options, 2), replace=False)]
        s, io = names[0], names[1]
        template = IOI_TEMPLATES[rng.integers(len(IOI_TEMPLATES))]
        place, obj = PLACES[rng.integers(len(PLACES))], OBJECTS[rng.integers(len(OBJECTS))]
        text = template.format(s=s, io=io, place=place, obj=obj) + "?"
        out.append(Question(text, (io, s, *names[2:options]), 0))
    return out


CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "China": "Beijing", "Russia": "Moscow", "England": "London", "Egypt": "Cairo", "Greece": "Athens",
    "Portugal": "Lisbon", "Austria": "Vienna", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Hungary": "Budapest",
    "Belgium": "Brussels", "the Netherlands": "Amsterdam", "Canada": "Ottawa", "Mexico": "Mexico City",
    "Argentina": "Buenos Aires", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana", "Kenya": "Nairobi",
    "Thailand": "Bangkok", "South Korea": "Seoul", "India": "New Delhi", "Iran": "Tehran", "Iraq": "Baghdad",
    "Turkey": "Ankara", "Australia": "Canberra", "the United States": "Washington", "Brazil": "Brasilia",
    "Colombia": "Bogota", "Venezuela": "Caracas", "Vietnam": "Hanoi", "the Philippines": "Manila",
    "Indonesia": "Jakarta", "Czechia": "Prague", "Romania": "Bucharest", "Ukraine": "Kyiv",
    "Switzerland": "Bern", "Scotland": "Edinburgh", "Saudi Arabia": "Riyadh", "Syria": "Damascus",
    "Lebanon": "Beirut", "Afghanistan": "Kabul", "Pakistan": "Islamabad", "Ethiopia": "Addis Ababa",
    "Nigeria": "Abuja", "Morocco": "Rabat", "Iceland": "Reykjavik", "New Zealand": "Wellington",
    "Bulgaria": "Sofia", "Serbia": "Belgrade", "Malaysia": "Kuala Lumpur",
}  # fmt: skip


def capitals(count: int, options: int, rng: np.random.Generator) -> list[Question]:
    """ "What is the capital of X?" with other countries' capitals as distractors."""
    countries = list(CAPITALS)
    out = []
    for _ in range(count):
        picked = rng.choice(len(countries), size=options, replace=False)
        choices = tuple(CAPITALS[countries[i]] for i in picked)
        out.append(Question(f"What is the capital of {countries[picked[0]]}?", choices, 0))
    return out


def arithmetic(count: int, options: int, rng: np.random.Generator) -> list[Question]:
    """Sums of two numbers from 1 to 20; distractors are the sum's near neighbours (±1 to ±3)."""
    out = []
    for _ in range(count):
        a, b = (int(v) for v in rng.integers(1, 21, size=2))
        offsets = rng.choice([-3, -2, -1, 1, 2, 3], size=options - 1, replace=False)
        choices = (str(a + b), *(str(a + b + int(o)) for o in offsets))
        out.append(Question(f"What is {a} plus {b}?", choices, 0))
    return out


Generator = Callable[[int, int, np.random.Generator], list[Question]]
OFFLINE_SUITES: dict[str, tuple[Generator, str]] = {
    "ioi": (ioi, "indirect-object identification: who received the object (the paper's IOI format)"),
    "capitals": (capitals, "capital cities of 60 countries"),
    "arithmetic": (arithmetic, "sums of two numbers from 1 to 20, near-miss distractors"),
}


def offline_split(suite: str, options: int, calibration: int, test: int, seed: int) -> Split:
    """A generated suite's calibration and test parts; the same seed gives the same questions."""
    generate, _ = OFFLINE_SUITES[suite]
    if options < 2 or (suite == "arithmetic" and options > 7) or options > len(LETTERS):
        raise UserError(f"suite '{suite}' cannot have {options} options")
    rng = np.random.default_rng([seed, 7919])
    # The two parts are disjoint draws of questions; with 60 capitals they may share a fact. No method fits
    # on content (they fit position priors, letters and weights), so a shared fact leaks nothing they use.
    questions = generate(calibration + test, options, rng)
    return split(questions, calibration, test, rng)
