"""Synthetic Brain Rot task (after Xing et al. 2025, "LLMs Can Get Brain Rot!", arXiv 2510.13928).

Their M1 rule splits tweets by engagement and length: junk = short and popular, control = long.
Here: high quality = long informative paragraphs (about 40-80 tokens), junk = short clickbait or
engagement bait (under about 25 tokens), both on the same topics. Queries are held-out
high-quality texts; ``heldout["high"]`` / ``heldout["junk"]`` are further unseen texts of each kind
for the perplexity check of the closed loop. Label 1 = high quality.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from rise_exp.config.task import BrainRotTaskConfig
from rise_exp.data.records import Record
from rise_exp.data.synthetic._common import SyntheticData, cap, check_settings, class_slots, draw_unique, make_rng

# topic -> (keywords, facts); the last QUERY_FACTS facts of each topic appear only in queries, so a
# query shares its topic and keywords, not its sentences, with the training pool
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sleep": (
        ("melatonin", "naps", "dreams"),
        (
            "adults need seven to nine hours of sleep a night",
            "deep sleep helps the brain store new memories",
            "screens late at night delay the release of melatonin",
            "short naps after lunch can restore alertness",
            "most dreams happen during the rapid eye movement stage",
        ),
    ),
    "coffee": (
        ("caffeine", "espresso", "adenosine"),
        (
            "caffeine blocks adenosine, the chemical that makes us feel tired",
            "the effect of a cup of coffee lasts about five hours",
            "coffee plants grow best at high altitude near the equator",
            "an espresso holds less caffeine than a large mug of filter coffee",
            "the body builds tolerance to caffeine within a few weeks",
        ),
    ),
    "electric cars": (
        ("batteries", "charging", "range"),
        (
            "electric motors turn most of their energy into motion",
            "battery prices fell sharply over the last decade",
            "regenerative braking recovers energy when a car slows down",
            "fast charging is gentler on batteries when it stops at eighty percent",
            "cold weather lowers the range of most batteries",
        ),
    ),
    "the housing market": (
        ("mortgage", "rent", "prices"),
        (
            "house prices depend on interest rates and local supply",
            "when mortgage rates rise, fewer people can afford to buy",
            "new construction takes years to catch up with demand",
            "rent tends to follow local wages more closely than house prices do",
            "zoning rules limit how many homes can be built on a plot",
        ),
    ),
    "exercise": (
        ("workout", "muscles", "cardio"),
        (
            "regular walking lowers the risk of heart disease",
            "muscles grow during rest after training, not during the workout",
            "short daily sessions are easier to keep up than long weekly ones",
            "cardio and strength training improve health in different ways",
            "stretching before a workout matters less than warming up",
        ),
    ),
    "video games": (
        ("gamers", "levels", "consoles"),
        (
            "game studios test levels with players before release",
            "puzzle games can train planning and working memory",
            "most game engines draw a new frame sixty times a second",
            "older consoles are emulated in software to preserve classic games",
            "gamers who play in teams practise communication under pressure",
        ),
    ),
    "space travel": (
        ("rockets", "astronauts", "orbit"),
        (
            "the space station orbits the earth about every ninety minutes",
            "rockets carry most of their mass as fuel",
            "astronauts lose bone density without gravity",
            "reusable rockets cut the cost of reaching orbit",
            "radio signals take minutes to travel between earth and mars",
        ),
    ),
    "the ocean": (
        ("coral", "tides", "sharks"),
        (
            "the ocean absorbs a large share of the heat trapped by greenhouse gases",
            "coral reefs cover a tiny area but host a quarter of marine species",
            "tides are driven mainly by the pull of the moon",
            "sharks have existed for longer than trees",
            "most of the deep sea floor has never been mapped in detail",
        ),
    ),
    "social media": (
        ("feeds", "followers", "algorithms"),
        (
            "feeds are ranked by predicted engagement, not by accuracy",
            "short videos hold attention but are quickly forgotten",
            "many platforms let users limit their daily screen time",
            "algorithms learn from what you pause on, not only from what you like",
            "a small share of accounts writes most of the posts people see",
        ),
    ),
    "cooking": (
        ("recipes", "spices", "baking"),
        (
            "searing meat browns it through the Maillard reaction",
            "salt draws moisture out of vegetables",
            "resting dough lets gluten relax so it is easier to shape",
            "whole spices keep their flavour far longer than ground ones",
            "baking needs exact measures because it is chemistry",
        ),
    ),
}
QUERY_FACTS = 2

OPENERS = (
    "Here is something worth knowing about {t}.",
    "A short explainer on {t}.",
    "Researchers who study {t} point to a few clear findings.",
    "If you want to understand {t}, start here.",
    "Many people misunderstand {t}, so let us look at the evidence.",
)
LINKS = (
    "Studies show that {f}.",
    "It is also true that {f}.",
    "In practice, {f}.",
    "One more point: {f}.",
    "Experts agree that {f}.",
    "Note that {f}.",
    "Remember that {f}.",
)
CLOSERS = (
    "Taken together, these facts explain why small daily choices about {t} add up.",
    "The details vary from person to person, so check good sources before changing habits.",
    "Knowing this makes it easier to judge claims about {t} that you read online.",
)
JUNK = (
    "you won't BELIEVE what {t} does to you 😱😱",
    "RT if {t} is your whole personality!!!",
    "omg {t} again lol 💀",
    "{T} is OVER. thread 👇👇",
    "only geniuses understand {t}. like if you agree",
    "WAIT till you see this {t} hack 🔥🔥🔥",
    "nobody: ... me at 3am: {t} 😂",
    "{t} tier list, fight me 😤",
    "this {t} take is going to get me cancelled 🙃",
    "unpopular opinion: {t} is overrated. RT",
    "POV: you just discovered {t} 🤯 follow for more",
    "if {t} was a person i would marry it ❤️❤️",
    "{T} facts they don't want you to know!! link in bio",
    "{k}??? in THIS economy 💀",
    "they LIED to us about {k} 😡 RT",
    "{k} hits different at 2am fr",
    "me pretending to understand {k} 🤡",
    "{k} is a scam and nobody is talking about it!!",
)


def _high(rng: random.Random, query: bool = False) -> str:
    """A long informative paragraph; queries use the query-only facts of their topic."""
    t = rng.choice(sorted(TOPICS))
    facts = TOPICS[t][1]
    if query:
        chosen = list(facts[-QUERY_FACTS:]) + rng.sample(facts[:-QUERY_FACTS], 1)
        rng.shuffle(chosen)
    else:
        chosen = rng.sample(facts[:-QUERY_FACTS], 3)
    links = rng.sample(LINKS, 3)
    body = " ".join(link.format(f=f) for link, f in zip(links, chosen))
    return f"{rng.choice(OPENERS).format(t=t)} {body} {rng.choice(CLOSERS).format(t=t)}"


FACT_BAIT = (  # engagement bait that reposts a fact: lexically close to informative text
    "Scientists SHOCKED: {f}!!! 😱",
    "wait... {f}?? 🤯 RT",
    "{f}. let that sink in 💀",
    "nobody talks about how {f} 😳",
    "daily reminder that {f} ✨ like and share",
)
JUNK_PREFIXES = ("", "ngl ", "bro ", "ok but ", "guys ", "lmao ", "real talk: ")
JUNK_SUFFIXES = ("", " #fyp", " #viral", " 🔥", " !!", " #trending", " lol", " @everyone")


def _junk(rng: random.Random) -> str:
    t = rng.choice(sorted(TOPICS))
    if rng.random() < 0.4:
        body = rng.choice(FACT_BAIT).format(f=rng.choice(TOPICS[t][1]))
    else:
        body = rng.choice(JUNK).format(t=t, T=cap(t), k=rng.choice(TOPICS[t][0]))
    return rng.choice(JUNK_PREFIXES) + body + rng.choice(JUNK_SUFFIXES)


def make_brain_rot(
    n_train: int = BrainRotTaskConfig.n_train,
    n_queries: int = BrainRotTaskConfig.n_queries,
    junk_ratio: float = BrainRotTaskConfig.junk_ratio,
    n_heldout: int = BrainRotTaskConfig.n_heldout,
    seed: int = BrainRotTaskConfig.seed,
) -> SyntheticData:
    """Generate a high-quality / junk text pool, high-quality queries and held-out text sets.

    Args:
        n_train: Training rows.
        n_queries: Held-out high-quality query texts.
        junk_ratio: Fraction of junk rows (the paper sweeps 0, 20, 50, 80 and 100%).
        n_heldout: Size of each of ``heldout["high"]`` and ``heldout["junk"]``.
        seed: Random seed.

    Returns:
        ``train`` (label 1 = high quality), ``queries`` and ``heldout``; no text appears twice.
    """
    check_settings({"n_train": n_train, "n_queries": n_queries, "n_heldout": n_heldout}, {"junk_ratio": junk_ratio})
    rng = make_rng(seed)
    seen: set[Hashable] = set()
    train: list[Record] = []
    for i, junk in enumerate(class_slots(rng, n_train, junk_ratio)):
        text = draw_unique(rng, _junk if junk else _high, seen, "junk texts" if junk else "high-quality texts")
        train.append(Record(id=f"brainrot-train-{i}", text=text, label=int(not junk)))

    def fresh(kind: str, n: int, label: int) -> list[Record]:
        make = (lambda r: _high(r, query=True)) if kind == "query" else (_high if label else _junk)
        return [
            Record(id=f"brainrot-{kind}-{j}", text=draw_unique(rng, make, seen, f"{kind} texts"), label=label)
            for j in range(n)
        ]

    queries = fresh("query", n_queries, 1)
    heldout = {"high": fresh("high", n_heldout, 1), "junk": fresh("junk", n_heldout, 0)}
    return SyntheticData(train=train, queries=queries, heldout=heldout)
