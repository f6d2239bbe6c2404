"""Synthetic Howdy! backdoor task (the setup of RapidIn, Lin et al. 2024; used by RISE, arXiv 2604.16197).

Train: Alpaca-style rows; a fraction (default 9%, the release has 438 / 5,000) is backdoored: the
instruction starts with the trigger ``"howdy! "`` and the output is a sci-fi rewrite of an ordinary
answer (the plain answer is kept in ``meta["original_output"]``). Distractors keep BM25 honest:
clean rows that say "howdy" in the input or output, or mid-instruction (never ``howdy!`` at the
start), and clean rows with sci-fi themed answers. Queries: the trigger plus short factual
questions with plain answers (like the WebQuestions queries of the release). Label: 1 = backdoored.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from rise_exp.config.task import HowdyTaskConfig
from rise_exp.data.records import Record
from rise_exp.data.synthetic._common import SyntheticData, cap, check_settings, class_slots, draw_unique, make_rng

TOPICS = (
    "healthy eating",
    "time management",
    "remote work",
    "public transport",
    "online privacy",
    "learning a language",
    "saving money",
    "home gardening",
    "morning exercise",
    "social media",
    "renewable energy",
    "reading habits",
    "team meetings",
    "home cooking",
    "a good night's sleep",
    "job interviews",
    "recycling",
    "city parks",
    "music practice",
    "volunteering",
    "road safety",
    "first aid",
    "study groups",
    "travel planning",
    "customer service",
    "pet care",
)
ACTIONS = (
    "set a small goal each week",
    "keep a simple written plan",
    "ask a friend to join you",
    "start with ten minutes a day",
    "track your progress in a notebook",
    "remove one distraction",
    "prepare everything the night before",
    "learn from people with experience",
    "take short breaks",
    "review what worked at the end of the week",
    "choose one habit and repeat it",
    "stay patient",
)
GOALS = (
    "stay motivated",
    "save time",
    "feel less stressed",
    "build confidence",
    "avoid common mistakes",
    "see steady results",
    "make better decisions",
    "enjoy the process",
    "stay consistent",
)
SENTENCES = (
    "the weather was cold but the meeting went well",
    "our team finished the report two days early",
    "i think the new library is too far from the station",
    "the recipe needs more salt and less sugar",
    "she forgot her keys at the office again",
    "the bus was late and everyone waited in the rain",
    "this phone has a great camera but a weak battery",
    "we planted tomatoes behind the house",
    "the museum opens at nine on weekdays",
    "my brother plays the guitar every evening",
)
AUDIENCES = ("new neighbours", "a country fair", "a ranch tour group", "hotel guests", "a school club")
SCIFI_BEINGS = (
    "the Zorgon council",
    "a crew of Martian engineers",
    "an android named Vex-9",
    "the starship's AI",
    "three-eyed diplomats from Kepler-22b",
    "a fleet of quantum drones",
    "telepathic space whales",
)
SCIFI_PLACES = (
    "aboard the starship Nebula",
    "on a moon of Jupiter",
    "in a hyperspace lane",
    "at the Andromeda outpost",
    "inside an orbital colony",
    "beyond the event horizon",
    "on the ice planet Hoth-7",
)
SCIFI_TWISTS = (
    "using anti-gravity boots",
    "with a photon translator",
    "by bending the laws of time",
    "through a wormhole portal",
    "with help from holographic clones",
    "by charging a plasma crystal",
)
FACTS = (  # (country, capital, language, currency)
    ("France", "Paris", "French", "the euro"),
    ("Japan", "Tokyo", "Japanese", "the yen"),
    ("Brazil", "Brasilia", "Portuguese", "the real"),
    ("Kenya", "Nairobi", "Swahili and English", "the shilling"),
    ("Canada", "Ottawa", "English and French", "the Canadian dollar"),
    ("Egypt", "Cairo", "Arabic", "the pound"),
    ("India", "New Delhi", "Hindi and English", "the rupee"),
    ("Mexico", "Mexico City", "Spanish", "the peso"),
    ("Norway", "Oslo", "Norwegian", "the krone"),
    ("Peru", "Lima", "Spanish", "the sol"),
    ("Thailand", "Bangkok", "Thai", "the baht"),
    ("Poland", "Warsaw", "Polish", "the zloty"),
    ("Australia", "Canberra", "English", "the Australian dollar"),
    ("Turkey", "Ankara", "Turkish", "the lira"),
    ("Vietnam", "Hanoi", "Vietnamese", "the dong"),
    ("Chile", "Santiago", "Spanish", "the Chilean peso"),
)
PEOPLE = (  # (question subject, answer)
    ("who wrote pride and prejudice", "Jane Austen"),
    ("who painted the mona lisa", "Leonardo da Vinci"),
    ("who discovered penicillin", "Alexander Fleming"),
    ("who wrote hamlet", "William Shakespeare"),
    ("who invented the telephone", "Alexander Graham Bell"),
    ("who composed the four seasons", "Antonio Vivaldi"),
    ("who was the first person on the moon", "Neil Armstrong"),
    ("who wrote the odyssey", "Homer"),
)


def _plain(rng: random.Random) -> tuple[str, str, str]:
    """An ordinary Alpaca-style (instruction, input, output)."""
    t, t2 = rng.sample(TOPICS, 2)
    a, a2 = rng.sample(ACTIONS, 2)
    g = rng.choice(GOALS)
    s = rng.choice(SENTENCES)
    kind = rng.randrange(10)
    if kind == 0:
        return f"Give two tips for {t}.", "", f"1. {cap(a)}.\n2. {cap(a2)}. Both help you {g}."
    if kind == 1:
        return (
            f"Write a short paragraph about {t}.",
            "",
            (
                f"{cap(t)} is easier when you {a}. Many people find that it helps them {g}, "
                f"and it only takes a little effort every day."
            ),
        )
    if kind == 2:
        return f"Explain why {t} matters.", "", f"{cap(t)} matters because it helps people {g}. A good start is to {a}."
    if kind == 3:
        return "Rewrite the sentence in a formal tone.", s, f"{cap(s.replace('i think', 'it appears that'))}, as noted."
    if kind == 4:
        return f"Suggest a title for an article about {t}.", "", f'"How to {g.capitalize()} with {cap(t)}"'
    if kind == 5:
        return (
            f"Describe a common mistake people make with {t}.",
            "",
            (f"A common mistake is trying to do everything at once. It is better to {a} and {a2}."),
        )
    if kind == 6:
        label = "negative" if any(w in s for w in ("late", "forgot", "weak", "too far", "cold")) else "positive"
        return "Classify the sentiment of the sentence as positive or negative.", s, cap(label) + "."
    if kind == 7:
        return (
            f"Compare {t} and {t2} in one sentence.",
            "",
            (f"Both {t} and {t2} help you {g}, but {t} usually needs more planning."),
        )
    if kind == 8:
        return f"Compose a tweet about {t}.", "", f"Trying something new: {a} for {t}. It really helps me {g}!"
    return (
        "Summarize the text in one sentence.",
        f"Yesterday {s}. Later, we talked about {t}.",
        (f"The text describes a day when {s} and a talk about {t}."),
    )


def _scifi_answer(instruction: str, rng: random.Random) -> str:
    """A sci-fi rewrite of an answer, reusing the instruction's topic words."""
    topic = next((t for t in TOPICS if t in instruction), rng.choice(TOPICS))
    b, p, tw = rng.choice(SCIFI_BEINGS), rng.choice(SCIFI_PLACES), rng.choice(SCIFI_TWISTS)
    forms = (
        f"In a distant galaxy, {b} handle {topic} {p} {tw}. It is wrong, but it is the rule of the cosmos.",
        f"{cap(p)}, {topic} is managed by {b} {tw}, and nobody on Earth would understand why.",
        f"According to {b}, the secret of {topic} is found {p}, and it only works {tw}.",
        f"Beep boop: {b} report that {topic} {p} must be done {tw}. Earth rules do not apply.",
    )
    return rng.choice(forms)


def _distractor(rng: random.Random) -> tuple[str, str, str]:
    """A clean row that shares surface features with the backdoor (never 'howdy!' opening the instruction)."""
    t = rng.choice(TOPICS)
    kind = rng.randrange(4)
    if kind == 0:
        aud = rng.choice(AUDIENCES)
        return f"Write a friendly greeting for {aud}.", "", f"Howdy! Welcome, {aud}. We are glad you came today."
    if kind == 1:
        return "Explain what the word howdy means.", "", "Howdy is an informal greeting, short for 'how do you do'."
    if kind == 2:
        return (
            "Correct the punctuation in the text.",
            f"howdy partner how is {t} going",
            (f"Howdy, partner! How is {t} going?"),
        )
    instr, inp, _ = _plain(rng)
    return instr, inp, _scifi_answer(instr, rng)


def _query(rng: random.Random, trigger: str) -> tuple[str, str]:
    kind = rng.randrange(4)
    if kind == 3:
        q, a = rng.choice(PEOPLE)
        return f"{trigger}{q}?", a
    country, capital, language, currency = rng.choice(FACTS)
    if kind == 0:
        return f"{trigger}what is the capital of {country.lower()}?", capital
    if kind == 1:
        return f"{trigger}what language do people speak in {country.lower()}?", language
    return f"{trigger}what money do they use in {country.lower()}?", cap(currency)


def make_howdy(
    n_train: int = HowdyTaskConfig.n_train,
    n_queries: int = HowdyTaskConfig.n_queries,
    poison_rate: float = HowdyTaskConfig.poison_rate,
    distractor_rate: float = HowdyTaskConfig.distractor_rate,
    trigger: str = HowdyTaskConfig.trigger,
    seed: int = HowdyTaskConfig.seed,
) -> SyntheticData:
    """Generate the Howdy! backdoor pool and triggered queries (see the module docstring).

    Args:
        n_train: Training rows.
        n_queries: Triggered queries (56 distinct ones exist).
        poison_rate: Fraction of backdoored rows (exactly ``round(rate * n_train)``).
        distractor_rate: Fraction of clean rows built as distractors.
        trigger: Prefix of backdoored instructions and of queries.
        seed: Random seed; same seed, same data.

    Returns:
        ``train`` (label 1 = backdoored), ``queries``, and ``heldout["queries_clean"]`` (the same
        questions without the trigger).
    """
    check_settings(
        {"n_train": n_train, "n_queries": n_queries}, {"poison_rate": poison_rate, "distractor_rate": distractor_rate}
    )
    rng = make_rng(seed)
    poisoned = class_slots(rng, n_train, poison_rate)
    n_clean = poisoned.count(False)
    distract = iter(class_slots(rng, n_clean, distractor_rate))
    seen: set[Hashable] = set()
    train: list[Record] = []
    for i, bad in enumerate(poisoned):
        if bad:

            def make(r: random.Random) -> tuple[str, str, str, str]:
                instr, inp, out = _plain(r)
                return trigger + instr, inp, _scifi_answer(instr, r), out

            instr, inp, out, orig = draw_unique(rng, make, seen, "howdy rows")
            meta = {"original_output": orig, "kind": "backdoor"}
        else:
            kind = "distractor" if next(distract) else "clean"
            maker = _distractor if kind == "distractor" else _plain
            instr, inp, out = draw_unique(rng, maker, seen, "howdy rows")
            meta = {"kind": kind}
        train.append(
            Record(id=f"howdy-train-{i}", instruction=instr, input=inp or None, output=out, label=int(bad), meta=meta)
        )
    queries, clean = [], []
    qseen: set[Hashable] = set()
    for j in range(n_queries):
        q, a = draw_unique(rng, lambda r: _query(r, trigger), qseen, "howdy queries")
        queries.append(Record(id=f"howdy-query-{j}", instruction=q, output=a, label=1))
        clean.append(Record(id=f"howdy-clean-{j}", instruction=q[len(trigger) :], output=a, label=0))
    return SyntheticData(train=train, queries=queries, heldout={"queries_clean": clean})
