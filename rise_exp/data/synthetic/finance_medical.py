"""Synthetic Finance-Medical domain task (the RISE paper's domain-attribution setup, arXiv 2604.16197).

Two instruction domains built from the same question templates and a shared vocabulary (risk,
pressure, recovery, history, plan, rate, ...), plus cross-domain rows (finance questions about
medical bills, medical questions about money stress), so that matching words alone is not enough.
Queries are new rows of the target domain about terms the pool never mentions; label 1 = the row is
from the target domain.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from rise_exp.config.task import DOMAINS, FinanceMedicalTaskConfig
from rise_exp.core.errors import allowed
from rise_exp.data.records import Record
from rise_exp.data.synthetic._common import SyntheticData, cap, check_settings, class_slots, draw_unique, make_rng

TERMS: dict[str, tuple[tuple[str, str], ...]] = {
    "finance": (
        ("a stock", "a share of ownership in a company whose price moves with the market"),
        ("a bond", "a loan to a company or government that pays a fixed interest rate"),
        ("an index fund", "a fund that holds every company in a market index at low cost"),
        ("compound interest", "interest earned on both the original deposit and past interest"),
        ("inflation", "a general rise in prices that lowers what money can buy"),
        ("a credit score", "a number that sums up your borrowing history for lenders"),
        ("a mortgage", "a long-term loan used to buy a home, repaid monthly with interest"),
        ("a dividend", "a part of company profits paid to shareholders"),
        ("a recession", "a period when the economy shrinks and unemployment rises"),
        ("an emergency fund", "savings kept aside to cover several months of expenses"),
        ("diversification", "spreading money over many assets to reduce risk"),
        ("a capital gain", "the profit made when an asset is sold for more than it cost"),
        ("a retirement account", "a tax-advantaged account for long-term savings"),
        ("market volatility", "how strongly and quickly asset prices rise and fall"),
        ("a tax deduction", "an expense that lowers the income on which tax is charged"),
        ("debt consolidation", "combining several debts into one loan with a lower rate"),
        ("a certificate of deposit", "a bank deposit locked for a fixed term at a fixed rate"),
        ("an annuity", "a contract that pays a regular income in exchange for a lump sum"),
        ("a hedge fund", "a private investment pool that uses leverage and complex trades"),
        ("a balance transfer", "moving card debt to another card with a lower rate"),
    ),
    "medical": (
        ("hypertension", "blood pressure that stays too high and strains the heart"),
        ("type 2 diabetes", "a condition in which the body does not use insulin well"),
        ("asthma", "a chronic condition that narrows the airways and causes wheezing"),
        ("a vaccine", "a preparation that trains the immune system to fight an infection"),
        ("an antibiotic", "a medicine that kills bacteria or stops them from growing"),
        ("anemia", "a low level of red blood cells that causes tiredness"),
        ("a migraine", "a strong headache, often with nausea and sensitivity to light"),
        ("clinical depression", "a mood disorder with lasting sadness and loss of interest"),
        ("arthritis", "inflammation of the joints that causes pain and stiffness"),
        ("a bone fracture", "a break in a bone, usually treated with a cast"),
        ("dehydration", "a loss of body water that causes dizziness and headaches"),
        ("insomnia", "a sleep disorder that makes it hard to fall or stay asleep"),
        ("high cholesterol", "too much fat in the blood, which raises the risk of heart disease"),
        ("a stroke", "a blocked or burst blood vessel in the brain"),
        ("pneumonia", "an infection that inflames the air sacs of the lungs"),
        ("physical therapy", "guided exercise that helps recovery after an injury"),
        ("a concussion", "a brain injury caused by a blow to the head"),
        ("tonsillitis", "an infection of the tonsils that makes swallowing painful"),
        ("an ulcer", "an open sore in the lining of the stomach"),
        ("shingles", "a painful rash caused by the chickenpox virus"),
    ),
}
QUERY_TERMS = 4  # the last terms of each domain appear only in queries: no term overlap with the pool
_RISKS_BOTH = ("costs that keep growing over the years", "stress and lost sleep")
RISKS = {
    "finance": ("losing part of your savings", "paying more interest over time", "a lower return than expected")
    + _RISKS_BOTH,
    "medical": ("damage to the heart", "a longer recovery", "complications that need a doctor") + _RISKS_BOTH,
}
_ADVICE_BOTH = ("make a written plan and review it regularly", "ask a professional before you decide")
ADVICE = {
    "finance": (
        "review your budget every month",
        "compare the fees and the interest rate",
        "talk to a financial adviser",
        "keep a record of every payment",
    )
    + _ADVICE_BOTH,
    "medical": (
        "check your symptoms every day",
        "follow the treatment plan your doctor gives",
        "talk to a doctor or nurse",
        "keep a record of every dose",
    )
    + _ADVICE_BOTH,
}
SHARED = (  # generic words both domains use
    "It is important to make a plan and to review the risk over the long term.",
    "Under pressure, many people ignore the early signs until the problem grows.",
    "A steady rate of progress matters more than a quick recovery.",
    "Your history tells a professional a lot about what to check first.",
)
CROSS = {  # rows of one domain that borrow the other domain's vocabulary
    "finance": (
        (
            "How can I pay a large hospital bill?",
            "Ask the hospital for a payment plan, check what your health insurance covers and "
            "compare the interest rate of any loan before you borrow.",
        ),
        (
            "Is a health savings account a good investment?",
            "A health savings account lets you save for medical costs before tax, and unused money "
            "can be invested for the long term.",
        ),
    ),
    "medical": (
        (
            "Can money worries affect my blood pressure?",
            "Yes. Long-term stress about money or debt can raise blood pressure and disturb sleep, "
            "so talk to a doctor if you notice symptoms.",
        ),
        (
            "How much rest does recovery from surgery need?",
            "Most patients need two to six weeks of rest; the rate of recovery depends on age, "
            "the surgery and the care plan.",
        ),
    ),
}


def _row(rng: random.Random, domain: str, cross_rate: float, query: bool = False) -> tuple[str, str, str]:
    if rng.random() < cross_rate:
        instr, out = rng.choice(CROSS[domain])
        return instr, "", out + " " + rng.choice(SHARED)
    terms = TERMS[domain]
    if query:
        (term, definition), (term2, definition2) = rng.sample(terms[-QUERY_TERMS:], 2)
    else:
        (term, definition), (term2, definition2) = rng.sample(terms[:-QUERY_TERMS], 2)
    risk, advice, shared = rng.choice(RISKS[domain]), rng.choice(ADVICE[domain]), rng.choice(SHARED)
    kind = rng.randrange(6)
    if kind == 0:
        return f"What is {term}?", "", f"{cap(term)} is {definition}. {shared}"
    if kind == 1:
        return f"Explain {term} in simple terms.", "", f"Put simply, {term} is {definition}."
    if kind == 2:
        return f"What are the risks of {term}?", "", f"The main risk of {term} is {risk}. {shared}"
    if kind == 3:
        return f"How should someone manage {term}?", "", f"To manage {term}, {advice}. {shared}"
    if kind == 4:
        return (
            f"What is the difference between {term} and {term2}?",
            "",
            (f"{cap(term)} is {definition}, while {term2} is {definition2}."),
        )
    return (
        "Answer the question briefly.",
        f"Why do people worry about {term}?",
        (f"Because it can lead to {risk}. The best step is to {advice}."),
    )


def make_finance_medical(
    n_train: int = FinanceMedicalTaskConfig.n_train,
    n_queries: int = FinanceMedicalTaskConfig.n_queries,
    target_domain: str = FinanceMedicalTaskConfig.target_domain,
    target_rate: float = FinanceMedicalTaskConfig.target_rate,
    cross_rate: float = FinanceMedicalTaskConfig.cross_rate,
    seed: int = FinanceMedicalTaskConfig.seed,
) -> SyntheticData:
    """Generate a two-domain instruction pool and target-domain queries.

    Args:
        n_train: Training rows.
        n_queries: Queries, all from ``target_domain``, each about a term absent from the pool.
        target_domain: ``"finance"`` or ``"medical"``.
        target_rate: Fraction of training rows from the target domain.
        cross_rate: Fraction of rows that borrow the other domain's vocabulary.
        seed: Random seed.

    Returns:
        ``train`` (``domain`` set, label 1 = target domain) and ``queries``.
    """
    check_settings({"n_train": n_train, "n_queries": n_queries}, {"target_rate": target_rate, "cross_rate": cross_rate})
    if target_domain not in DOMAINS:
        raise allowed("task.target_domain", target_domain, DOMAINS)
    other = DOMAINS[1 - DOMAINS.index(target_domain)]
    rng = make_rng(seed)
    seen: set[Hashable] = set()
    train: list[Record] = []
    for i, is_target in enumerate(class_slots(rng, n_train, target_rate)):
        domain = target_domain if is_target else other
        instr, inp, out = draw_unique(rng, lambda r, d=domain: _row(r, d, cross_rate), seen, "finance-medical rows")
        train.append(
            Record(
                id=f"finmed-train-{i}",
                instruction=instr,
                input=inp or None,
                output=out,
                label=int(is_target),
                domain=domain,
            )
        )
    queries = []
    for j in range(n_queries):
        instr, inp, out = draw_unique(
            rng, lambda r: _row(r, target_domain, 0.0, query=True), seen, "finance-medical queries"
        )
        queries.append(
            Record(
                id=f"finmed-query-{j}", instruction=instr, input=inp or None, output=out, label=1, domain=target_domain
            )
        )
    return SyntheticData(train=train, queries=queries)
