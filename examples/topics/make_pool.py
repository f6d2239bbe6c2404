"""Write the example pool: 240 short notes on four topics and five questions per topic.

    python examples/topics/make_pool.py            # rewrites pool.jsonl and queries_<topic>.jsonl here

Every pool row has an ``id``, its ``text``, its ``topic`` and one 0/1 column per topic, so one query set's
labels are one column: ``task.fields.label=gardening``. Deterministic (seed 0); the shipped files are its
output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPICS: dict[str, dict[str, list[str]]] = {
    "gardening": {
        "subject": [
            "Tomato plants",
            "Young lettuce",
            "Rose bushes",
            "Potted basil",
            "Strawberry beds",
            "Seedlings",
            "Pepper plants",
            "Climbing beans",
            "Fruit trees",
            "Raised vegetable beds",
        ],
        "claim": [
            "need deep watering two or three times a week in summer",
            "grow best in well-drained soil rich in compost",
            "should be mulched to keep the roots cool and moist",
            "want at least six hours of direct sunlight",
            "benefit from pruning the suckers and dead leaves",
            "should be fed with a balanced fertiliser every two weeks",
            "are hurt by aphids, which a soap spray keeps down",
            "must be hardened off before they are planted outside",
            "do well when watered at the base early in the morning",
            "need staking or a cage once they start to flower",
        ],
        "tail": [
            "before the first frost.",
            "in a sunny corner of the garden.",
            "during a dry spell.",
            "after transplanting.",
            "in heavy clay soil.",
            "in the spring.",
        ],
    },
    "astronomy": {
        "subject": [
            "Saturn's rings",
            "The Andromeda galaxy",
            "A total solar eclipse",
            "Jupiter's moons",
            "A red giant star",
            "The Milky Way",
            "A comet's tail",
            "Mars",
            "A neutron star",
            "The Orion nebula",
        ],
        "claim": [
            "can be seen with a small telescope on a clear night",
            "is made of ice and rock orbiting far from the Sun",
            "lies millions of light years from Earth",
            "shines because of nuclear fusion in its core",
            "was photographed in detail by a space probe",
            "points away from the Sun because of the solar wind",
            "forms when a massive star collapses",
            "is where astronomers watch new stars being born",
            "moves across the night sky over the seasons",
            "is studied by measuring the light of distant stars",
        ],
        "tail": [
            "through an observatory telescope.",
            "far beyond the solar system.",
            "in infrared light.",
            "after sunset.",
            "from the southern hemisphere.",
            "with a pair of binoculars.",
        ],
    },
    "tax": {
        "subject": [
            "A self-employed worker",
            "A small business",
            "A landlord",
            "A married couple",
            "An employee with two jobs",
            "A charity",
            "A freelance designer",
            "A retiree",
            "A company director",
            "A student with a part-time job",
        ],
        "claim": [
            "must file an income tax return by the annual deadline",
            "can deduct business expenses from taxable income",
            "owes capital gains tax when selling shares at a profit",
            "may claim a credit for dependent children",
            "has to register for value added tax above the threshold",
            "pays tax on rental income after allowable costs",
            "should keep receipts for six years in case of an audit",
            "can reduce the tax bill with pension contributions",
            "faces a penalty and interest for late payment",
            "receives a refund when too much tax was withheld",
        ],
        "tail": [
            "under the current tax code.",
            "for the fiscal year.",
            "according to the revenue service.",
            "on the annual return.",
            "before the filing deadline.",
            "under federal law.",
        ],
    },
    "chess": {
        "subject": [
            "The Sicilian Defence",
            "A knight fork",
            "Castling",
            "The endgame",
            "A pawn promotion",
            "The queen's gambit",
            "A back rank mate",
            "The bishop pair",
            "An open file",
            "En passant",
        ],
        "claim": [
            "gives Black an unbalanced game against the king's pawn opening",
            "attacks two pieces at once and wins material",
            "moves the king to safety and brings a rook into play",
            "rewards an active king and passed pawns",
            "turns a pawn on the last rank into a queen",
            "offers a pawn to gain control of the centre",
            "happens when the king is trapped behind its own pawns",
            "is strong in open positions with long diagonals",
            "lets a rook invade the opponent's position",
            "captures a pawn that has just moved two squares",
        ],
        "tail": [
            "in tournament games.",
            "against a strong opponent.",
            "according to the grandmaster.",
            "in the middlegame.",
            "on the chessboard.",
            "in blitz games.",
        ],
    },
}
QUESTIONS = {
    "gardening": [
        "How often should tomato plants be watered?",
        "What soil do vegetables grow best in?",
        "How do I get rid of aphids on my roses?",
        "When should seedlings be planted outside?",
        "Why should I mulch my garden beds?",
    ],
    "astronomy": [
        "Can I see Saturn's rings with a small telescope?",
        "How far away is the Andromeda galaxy?",
        "Why does a comet have a tail?",
        "How do stars produce their light?",
        "Where are new stars born?",
    ],
    "tax": [
        "When is the deadline for filing my income tax return?",
        "Which business expenses can I deduct?",
        "Do I pay tax when I sell shares at a profit?",
        "How long should I keep my receipts?",
        "What happens if I pay my taxes late?",
    ],
    "chess": [
        "What is a knight fork in chess?",
        "When is it a good time to castle?",
        "How does en passant work?",
        "What should I do in a chess endgame?",
        "Why is the Sicilian Defence popular?",
    ],
}
PER_TOPIC = 60


def main() -> None:
    rng = random.Random(0)
    rows = []
    for topic, parts in TOPICS.items():
        seen: set[str] = set()
        while len(seen) < PER_TOPIC:
            seen.add(f"{rng.choice(parts['subject'])} {rng.choice(parts['claim'])} {rng.choice(parts['tail'])}")
        rows += [(topic, text) for text in sorted(seen)]
    rng.shuffle(rows)
    with open(HERE / "pool.jsonl", "w") as f:
        for i, (topic, text) in enumerate(rows):
            row = {"id": f"{topic}-{i:03d}", "text": text, "topic": topic, **{t: int(t == topic) for t in TOPICS}}
            f.write(json.dumps(row) + "\n")
    for topic, questions in QUESTIONS.items():
        with open(HERE / f"queries_{topic}.jsonl", "w") as f:
            for i, q in enumerate(questions):
                f.write(json.dumps({"id": f"{topic}-q{i}", "text": q, "topic": topic}) + "\n")


if __name__ == "__main__":
    main()
