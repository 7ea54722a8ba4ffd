"""Build the bundled judgment set data/judgments/{train,test}.jsonl.

Merges the hand-written records in ``data/judgments/source/handwritten.jsonl`` with four seeded,
deterministic generator families (arithmetic word problems, unit conversions, format constraints and
facts from a small hand-made table), numbers them ``jd-0001``..., splits them about 80/20 stratified by
kind and label, validates every record and prints a counts table.

    python scripts/make_judgments.py [--out DIR]

Running it twice gives byte-identical files. All numbers in the generated records are computed here.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "judgments"
HANDWRITTEN = DATA / "source" / "handwritten.jsonl"
SEED = 20240521
TEST_SHARE = 0.2
KINDS = (
    "factual",
    "arithmetic",
    "unit_conversion",
    "format",
    "summary",
    "code",
    "safety",
    "commonsense",
    "style",
)
FIELDS = (
    "id",
    "kind",
    "instruction",
    "input",
    "output",
    "judgment",
    "refinement",
    "error_spans",
    "answer",
)
# "answer": the checkable final answer of a generated arithmetic, unit or fact record (a number, a
# clock time or a name, as the correct response states it); null where no short answer is checkable.
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?::\d\d)?")

# Commendations for generated positives (the rest of the positives get a null judgment).
PRAISE = (
    "Perfect. The answer is correct and clearly stated.",
    "Perfect. Correct, concise and exactly what was asked.",
    "Perfect. The result is right and the working is easy to follow.",
    "Perfect. Accurate and to the point.",
)


def record(
    kind: str,
    instruction: str,
    output: str,
    judgment: str | None = None,
    refinement: str | None = None,
    spans: list[str] | None = None,
    input: str = "",
    answer: str | None = None,
) -> dict:
    """One record in file order (``id`` and ``source`` are filled in later)."""
    return {
        "kind": kind,
        "instruction": instruction,
        "input": input,
        "output": output,
        "judgment": judgment,
        "refinement": refinement,
        "error_spans": list(spans or []),
        "answer": answer,
    }


def positive(
    kind: str, instruction: str, output: str, rng: random.Random, answer: str | None = None
) -> dict:
    """A positive record: null judgment or a "Perfect." commendation, chosen by ``rng``."""
    judgment = rng.choice(PRAISE) if rng.random() < 0.5 else None
    return record(kind, instruction, output, judgment, answer=answer)


def final_number(text: str) -> str:
    """The last number (or clock time) a correct worked answer states: its final result."""
    return NUMBER.findall(text)[-1].rstrip(".")


def is_positive(row: dict) -> bool:
    return row["judgment"] is None or row["judgment"].startswith("Perfect")


def num(value: float | Fraction, places: int = 2) -> str:
    """A number with thousands separators and at most ``places`` decimals (trailing zeros dropped)."""
    text = f"{float(value):,.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def money(cents: int) -> str:
    """``$12`` for whole dollars, ``$12.50`` otherwise."""
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}" if rest == 0 else f"${dollars:,}.{rest:02d}"


def pick_labels(n: int, n_pos: int, rng: random.Random) -> list[bool]:
    """``n`` labels, exactly ``n_pos`` of them positive, in a seeded order."""
    labels = [True] * n_pos + [False] * (n - n_pos)
    rng.shuffle(labels)
    return labels


# ---------------------------------------------------------------------------------------------------
# Family "arithmetic_word": word problems; the bad responses make one realistic slip.

PEOPLE = (
    ("Mia", "she"),
    ("Omar", "he"),
    ("Priya", "she"),
    ("Lucas", "he"),
    ("Aiko", "she"),
    ("Daniel", "he"),
    ("Zara", "she"),
    ("Felix", "he"),
    ("Nadia", "she"),
    ("Tomás", "he"),
    ("Grace", "she"),
    ("Kofi", "he"),
    ("Elena", "she"),
    ("Sam", "he"),
    ("Hana", "she"),
    ("Ivan", "he"),
)
# (singular, plural, lowest price in cents, highest price in cents, price step in cents)
GOODS = (
    ("notebook", "notebooks", 150, 450, 25),
    ("pen", "pens", 50, 250, 25),
    ("cinema ticket", "cinema tickets", 600, 1400, 50),
    ("pack of stickers", "packs of stickers", 100, 300, 50),
    ("plant pot", "plant pots", 300, 900, 100),
    ("bus pass", "bus passes", 1500, 4000, 500),
    ("sandwich", "sandwiches", 250, 650, 50),
    ("paintbrush", "paintbrushes", 120, 480, 40),
    ("coffee", "coffees", 220, 420, 20),
    ("jar of honey", "jars of honey", 400, 900, 50),
)
SHAREABLE = ("sweets", "marbles", "stickers", "cards", "pencils", "biscuits", "stamps", "beads")
GROUPS = ("children", "friends", "teams", "tables", "classmates", "boxes")


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(PEOPLE)


def _price(rng: random.Random, low: int, high: int, step: int) -> int:
    return rng.randrange(low, high + 1, step)


def _arith_buy(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    name, _ = _person(rng)
    single, plural, low, high, step = rng.choice(GOODS)
    n, price = rng.randint(3, 14), _price(rng, low, high, step)
    total = n * price
    instruction = rng.choice(
        (
            f"{name} buys {n} {plural} at {money(price)} each. How much does that cost in total?",
            f"One {single} costs {money(price)}. What do {n} {plural} cost?",
            f"{name} needs {n} {plural}, which cost {money(price)} each. What is the total cost?",
        )
    )
    wrong = total + rng.choice((price, -price, 100, -100, 1000))
    form = "{n} × {p} = {t}. The total cost is {t2}."
    if rng.random() < 0.5:
        form = "Each costs {p}, so {n} of them cost {n} × {p} = {t}. That makes {t2} in total."
    good = form.format(n=n, p=money(price), t=money(total), t2=money(total))
    bad = form.format(n=n, p=money(price), t=money(wrong), t2=money(wrong))
    step_text = f"{n} × {money(price)} = {money(wrong)}"
    tail = (
        f"The total cost is {money(wrong)}" if "total cost" in form else f"{money(wrong)} in total"
    )
    judgment = rng.choice(
        (
            f"The multiplication is wrong: {n} × {money(price)} = {money(total)}, not {money(wrong)}. "
            f"The total is {money(total)}.",
            f"The method is right but the product is not. {n} × {money(price)} comes to "
            f"{money(total)}, so the answer {money(wrong)} is off by {money(abs(wrong - total))}.",
        )
    )
    return instruction, good, bad, judgment, [step_text, tail]


def _arith_change(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    name, pronoun = _person(rng)
    single, plural, low, high, step = rng.choice(GOODS[:2] + GOODS[3:5] + GOODS[6:])
    n, price = rng.randint(2, 6), _price(rng, low, high, step)
    cost = n * price
    bill = next(b for b in (1000, 2000, 5000, 10000) if b > cost)
    change = bill - cost
    instruction = rng.choice(
        (
            f"{name} buys {n} {plural} at {money(price)} each and pays with a {money(bill)} note. "
            f"How much change does {pronoun} get?",
            f"{n} {plural} cost {money(price)} each. How much change is there from {money(bill)}?",
        )
    )
    good = (
        f"The {plural} cost {n} × {money(price)} = {money(cost)}, so the change is "
        f"{money(bill)} − {money(cost)} = {money(change)}."
    )
    if rng.random() < 0.5:
        wrong = bill - price
        bad = f"The change is {money(bill)} − {money(price)} = {money(wrong)}."
        spans = [f"{money(bill)} − {money(price)} = {money(wrong)}"]
        judgment = (
            f"The response subtracts the price of a single {single} only. {n} {plural} cost "
            f"{n} × {money(price)} = {money(cost)}, so the change is {money(bill)} − {money(cost)} "
            f"= {money(change)}."
        )
    else:
        wrong = change + rng.choice((100, -100, 10, 1000 if change > 1000 else 50))
        wrong = wrong if wrong > 0 else change + 100
        bad = good.replace(f"= {money(change)}.", f"= {money(wrong)}.")
        spans = [f"{money(bill)} − {money(cost)} = {money(wrong)}"]
        judgment = (
            f"The cost of {money(cost)} is right, but the subtraction is not: {money(bill)} − "
            f"{money(cost)} = {money(change)}, not {money(wrong)}."
        )
    return instruction, good, bad, judgment, spans


def _arith_share(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    things, group = rng.choice(SHAREABLE), rng.choice(GROUPS)
    k, each = rng.randint(3, 9), rng.randint(6, 25)
    total = k * each
    instruction = rng.choice(
        (
            f"{total} {things} are shared equally among {k} {group}. How many does each get?",
            f"If {total} {things} are split evenly between {k} {group}, how many go to each?",
        )
    )
    good = f"{total} ÷ {k} = {each}, so each gets {each} {things}."
    wrong = each + rng.choice((1, -1, 2))
    bad = f"{total} ÷ {k} = {wrong}, so each gets {wrong} {things}."
    judgment = rng.choice(
        (
            f"The division is wrong: {k} × {wrong} = {k * wrong}, not {total}. "
            f"{total} ÷ {k} = {each}, so each gets {each}.",
            f"{total} ÷ {k} is {each}, not {wrong} (check: {k} × {each} = {total}).",
        )
    )
    return instruction, good, bad, judgment, [f"÷ {k} = {wrong}", f"gets {wrong}"]


def _hours_minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    hour_text = f"{hours} hour" + ("s" if hours != 1 else "")
    return hour_text if rest == 0 else f"{hour_text} {rest} minutes"


def _arith_travel(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    vehicle, speeds = rng.choice(
        (
            ("train", (80, 90, 96, 100, 120)),
            ("coach", (60, 64, 72, 80)),
            ("car", (45, 50, 60, 72, 90)),
            ("ferry", (24, 30, 36, 40)),
            ("cyclist", (12, 15, 18, 20)),
            ("lorry", (50, 60, 64, 72)),
        )
    )
    speed = rng.choice(speeds)
    if rng.random() < 0.5:  # distance = speed × time
        hours = rng.choice((Fraction(3, 2), Fraction(5, 2), 2, 3, 4, Fraction(7, 2)))
        distance = speed * hours
        instruction = (
            f"A {vehicle} travels at {speed} km/h for {num(hours)} hours. How far does it go?"
        )
        good = f"Distance = speed × time = {speed} × {num(hours)} = {num(distance)} km."
        wrong = Fraction(speed) / hours
        bad = f"Distance = speed ÷ time = {speed} ÷ {num(hours)} = {num(wrong)} km."
        spans = [f"speed ÷ time = {speed} ÷ {num(hours)} = {num(wrong)} km"]
        judgment = (
            f"The formula is wrong: distance is speed multiplied by time, not divided. "
            f"{speed} × {num(hours)} = {num(distance)} km."
        )
        return instruction, good, bad, judgment, spans
    minutes = rng.choice((90, 150, 210, 270, 45 + 60, 75 + 60))  # never whole hours
    distance = Fraction(speed * minutes, 60)
    instruction = (
        f"How long does a {vehicle} going at {speed} km/h take to cover {num(distance)} km? "
        f"Give the answer in hours and minutes."
    )
    hours = Fraction(minutes, 60)
    good = f"{num(distance)} ÷ {speed} = {num(hours)} hours, which is {_hours_minutes(minutes)}."
    whole, frac = divmod(hours, 1)
    wrong_text = f"{whole} hour{'s' if whole != 1 else ''} {num(frac * 100)} minutes"
    bad = f"{num(distance)} ÷ {speed} = {num(hours)} hours, which is {wrong_text}."
    judgment = (
        f"The division is right, but the decimal part is read as minutes: {num(frac)} of an hour "
        f"is {num(frac * 60)} minutes, not {num(frac * 100)}. The trip takes {_hours_minutes(minutes)}."
    )
    return instruction, good, bad, judgment, [wrong_text]


def _arith_discount(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    item = rng.choice(("jacket", "lamp", "backpack", "pair of boots", "kettle", "board game"))
    dollars, pct = rng.randrange(20, 200, 4), rng.choice((10, 15, 20, 25, 30, 40))
    price, off = dollars * 100, dollars * pct  # cents; pct% of the price is exact
    sale = price - off
    instruction = rng.choice(
        (
            f"A {item} costs {money(price)} and is reduced by {pct}%. What is the sale price?",
            f"What does a {money(price)} {item} cost after a {pct}% discount?",
        )
    )
    good = (
        f"{pct}% of {money(price)} is {money(off)}, so the sale price is "
        f"{money(price)} − {money(off)} = {money(sale)}."
    )
    if rng.random() < 0.5:
        bad = f"{pct}% of {money(price)} is {money(off)}, so the sale price is {money(off)}."
        spans = [f"sale price is {money(off)}"]
        judgment = (
            f"{money(off)} is the amount saved, not the price. The sale price is "
            f"{money(price)} − {money(off)} = {money(sale)}."
        )
    else:
        bad = (
            f"{pct}% of {money(price)} is {money(off)}, so the sale price is "
            f"{money(price)} + {money(off)} = {money(price + off)}."
        )
        spans = [f"{money(price)} + {money(off)} = {money(price + off)}"]
        judgment = (
            f"A discount lowers the price, so the {money(off)} must be subtracted, not added: "
            f"{money(price)} − {money(off)} = {money(sale)}."
        )
    return instruction, good, bad, judgment, spans


def _arith_stock(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    name, pronoun = _person(rng)
    friend, _ = _person(rng)
    while friend == name:
        friend, _ = _person(rng)
    things = rng.choice(SHAREABLE)
    have, give = rng.randint(20, 60), rng.randint(3, 15)
    packs, per = rng.randint(2, 5), rng.choice((4, 5, 6, 8, 10, 12))
    left, added = have - give, packs * per
    result = left + added
    instruction = (
        f"{name} had {have} {things}. {pronoun.capitalize()} gave {give} to {friend} and then "
        f"bought {packs} packs of {per}. How many {things} does {name} have now?"
    )
    good = (
        f"After giving some away, {name} has {have} − {give} = {left}. The packs add "
        f"{packs} × {per} = {added}, so {name} now has {left} + {added} = {result} {things}."
    )
    if rng.random() < 0.5:
        wrong = left + packs
        bad = (
            f"After giving some away, {name} has {have} − {give} = {left}. The packs add "
            f"{packs}, so {name} now has {left} + {packs} = {wrong} {things}."
        )
        spans = [f"The packs add {packs},", f"{left} + {packs} = {wrong}"]
        judgment = (
            f"The response counts the packs instead of the {things} in them: {packs} packs of {per} "
            f"hold {packs} × {per} = {added}, so {name} has {left} + {added} = {result}."
        )
    else:
        wrong = have + added
        bad = (
            f"The packs add {packs} × {per} = {added}, so {name} now has "
            f"{have} + {added} = {wrong} {things}."
        )
        spans = [f"{have} + {added} = {wrong}"]
        judgment = (
            f"The {give} {things} given to {friend} were never subtracted. {name} has "
            f"{have} − {give} + {added} = {result} {things}."
        )
    return instruction, good, bad, judgment, spans


def _arith_rectangle(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    thing = rng.choice(("garden", "classroom floor", "rug", "car park", "swimming pool", "patio"))
    width = rng.randint(2, 15)
    length = width + rng.randint(1, 15)
    area, perimeter = length * width, 2 * (length + width)
    if rng.random() < 0.5:
        instruction = (
            f"A rectangular {thing} is {length} m long and {width} m wide. What is its area?"
        )
        good = f"Area = length × width = {length} × {width} = {area} square metres."
        bad = f"Area = 2 × ({length} + {width}) = {perimeter} square metres."
        spans = [f"2 × ({length} + {width}) = {perimeter}"]
        judgment = (
            f"That is the perimeter formula. The area of a rectangle is length × width: "
            f"{length} × {width} = {area} square metres."
        )
    else:
        instruction = (
            f"How much fencing is needed to go all the way round a rectangular {thing} "
            f"{length} m long and {width} m wide?"
        )
        good = f"The perimeter is 2 × ({length} + {width}) = {perimeter} metres of fencing."
        bad = f"The perimeter is {length} + {width} = {length + width} metres of fencing."
        spans = [f"{length} + {width} = {length + width}"]
        judgment = (
            f"Only two of the four sides are counted. Going all the way round needs "
            f"2 × ({length} + {width}) = {perimeter} metres."
        )
    return instruction, good, bad, judgment, spans


def _arith_mean(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    name, _ = _person(rng)
    count = rng.choice((4, 5))
    scores = [rng.randint(55, 99) for _ in range(count)]
    total = sum(scores)
    mean = Fraction(total, count)
    what = rng.choice(("test scores", "quiz marks", "points in the last games", "bowling scores"))
    listed = ", ".join(str(s) for s in scores[:-1]) + f" and {scores[-1]}"
    instruction = f"{name}'s {what} are {listed}. What is the mean?"
    good = f"The total is {total}, and {total} ÷ {count} = {num(mean)}, so the mean is {num(mean)}."
    wrong_count = count - 1
    wrong = Fraction(total, wrong_count)
    bad = (
        f"The total is {total}, and {total} ÷ {wrong_count} = {num(wrong)}, "
        f"so the mean is {num(wrong)}."
    )
    judgment = (
        f"The sum {total} is right, but there are {count} values, not {wrong_count}, so divide by "
        f"{count}: {total} ÷ {count} = {num(mean)}."
    )
    spans = [f"{total} ÷ {wrong_count} = {num(wrong)}", f"the mean is {num(wrong)}"]
    return instruction, good, bad, judgment, spans


def _clock(minutes: int) -> str:
    hour, minute = divmod(minutes, 60)
    suffix = "am" if hour < 12 else "pm"
    return f"{(hour - 1) % 12 + 1}:{minute:02d} {suffix}"


def _arith_clock(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    event = rng.choice(("film", "concert", "football match", "play", "lecture", "boat trip"))
    start = rng.randrange(13 * 60, 20 * 60, 5)
    length = rng.randrange(70, 175, 5)
    while (start % 60) + (length % 60) < 60:  # make the minutes carry into the next hour
        length += 5
    end = start + length
    instruction = rng.choice(
        (
            f"A {event} starts at {_clock(start)} and lasts {length} minutes. When does it end?",
            f"If a {event} begins at {_clock(start)} and runs for {length} minutes, "
            f"what time does it finish?",
        )
    )
    good = f"{length} minutes is {_hours_minutes(length)}, so it ends at {_clock(end)}."
    wrong = end - 60  # forgets to carry the extra hour
    bad = f"{length} minutes is {_hours_minutes(length)}, so it ends at {_clock(wrong)}."
    judgment = (
        f"The minutes were added without carrying the hour: {_clock(start)} plus "
        f"{_hours_minutes(length)} is {_clock(end)}, not {_clock(wrong)}."
    )
    return instruction, good, bad, judgment, [_clock(wrong)]


def _arith_savings(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    name, pronoun = _person(rng)
    thing = rng.choice(
        ("bike", "guitar", "tablet", "pair of headphones", "telescope", "skateboard")
    )
    weekly = rng.choice((6, 8, 12, 15, 18, 25))
    goal = weekly * rng.randint(5, 14) + rng.randint(1, weekly - 1)
    weeks = -(-goal // weekly)
    instruction = (
        f"{name} saves ${weekly} a week for a {thing} that costs ${goal}. How many weeks "
        f"until {pronoun} can afford it?"
    )
    good = (
        f"{goal} ÷ {weekly} ≈ {num(Fraction(goal, weekly))}, and a part week still counts, "
        f"so {name} needs {weeks} weeks."
    )
    bad = f"{goal} ÷ {weekly} ≈ {num(Fraction(goal, weekly))}, so {name} needs {weeks - 1} weeks."
    judgment = (
        f"Rounding down is wrong here: after {weeks - 1} weeks {name} has only "
        f"${weekly * (weeks - 1)}, less than ${goal}. It takes {weeks} weeks."
    )
    return instruction, good, bad, judgment, [f"needs {weeks - 1} weeks"]


ARITHMETIC_BUILDERS = (
    _arith_buy,
    _arith_change,
    _arith_share,
    _arith_travel,
    _arith_discount,
    _arith_stock,
    _arith_rectangle,
    _arith_mean,
    _arith_clock,
    _arith_savings,
)


def numeric_rows(
    kind: str,
    builders: Sequence[Callable[[random.Random], tuple]],
    n: int,
    n_pos: int,
    rng: random.Random,
) -> list[dict]:
    """``n`` rows of ``kind`` (``n_pos`` accepted), the builders taken in turn; each builder
    returns ``(instruction, good, bad, judgment, spans)`` and is called again until its
    instruction is new. The reference answer is the good response's final number."""
    rows, seen = [], set()
    for k, good_label in enumerate(pick_labels(n, n_pos, rng)):
        builder = builders[k % len(builders)]
        instruction, good, bad, judgment, spans = builder(rng)
        while instruction in seen:
            instruction, good, bad, judgment, spans = builder(rng)
        seen.add(instruction)
        answer = final_number(good)
        if good_label:
            rows.append(positive(kind, instruction, good, rng, answer))
        else:
            rows.append(record(kind, instruction, bad, judgment, good, spans, answer=answer))
    return rows


def family_arithmetic_word(n: int, n_pos: int, rng: random.Random) -> list[dict]:
    return numeric_rows("arithmetic", ARITHMETIC_BUILDERS, n, n_pos, rng)


# ---------------------------------------------------------------------------------------------------
# Family "unit_factor": unit conversions; the bad responses use a wrong or inverted factor.
# (from plural, from singular, to plural, factor as shown, exact factor, values, wrong factors)
# A wrong factor is (factor as shown, why it is wrong); "{df}" is replaced by the right factor.
CONVERSIONS = (
    ("miles", "mile", "kilometres", "1.609", 1.609344, (3, 5, 8, 12, 15, 40, 62, 250),
     (("0.621", "That is the kilometres-to-miles factor. A mile is longer than a kilometre "
       "(1 mile ≈ {df} km), so the number of kilometres must be larger."),
      ("1.5", "1 mile is about {df} km, not 1.5 km."))),
    ("kilometres", "kilometre", "miles", "0.6214", 0.621371192, (5, 10, 21, 42, 80, 120, 300),
     (("1.609", "This multiplies by the miles-to-kilometres factor. 1 km ≈ {df} miles, so the "
       "number of miles must be smaller."),)),
    ("kilograms", "kilogram", "pounds", "2.205", 2.20462262, (3, 5, 12, 20, 45, 68, 80),
     (("0.4536", "That is the pounds-to-kilograms factor. 1 kg ≈ {df} lb, so there are more "
       "pounds than kilograms."),)),
    ("pounds", "pound", "kilograms", "0.4536", 0.45359237, (2, 7, 10, 25, 55, 150, 180),
     (("2.205", "That is the kilograms-to-pounds factor. 1 lb ≈ {df} kg, so the number of "
       "kilograms must be smaller."),)),
    ("inches", "inch", "centimetres", "2.54", 2.54, (4, 12, 15, 27, 32, 55, 65),
     (("2.2", "1 inch is exactly {df} cm; 2.2 is roughly the kilogram-to-pound factor."),
      ("2.45", "The digits of the factor are swapped: 1 inch is exactly {df} cm."))),
    ("feet", "foot", "metres", "0.3048", 0.3048, (6, 8, 10, 33, 100, 1500),
     (("3.281", "That is the metres-to-feet factor. 1 foot = {df} m, so the number of metres "
       "is smaller than the number of feet."),)),
    ("metres", "metre", "feet", "3.281", 3.28083990, (2, 5, 12, 50, 400, 1000),
     (("0.3048", "That is the feet-to-metres factor. 1 m ≈ {df} ft, so there are more feet "
       "than metres."),)),
    ("US gallons", "US gallon", "litres", "3.785", 3.785411784, (2, 5, 12, 15, 20, 50),
     (("4.546", "4.546 litres is the imperial (UK) gallon; a US gallon is about {df} litres."),)),
    ("litres", "litre", "US gallons", "0.2642", 0.264172052, (4, 10, 19, 40, 60, 200),
     (("3.785", "That is the gallons-to-litres factor. 1 litre ≈ {df} US gallons, so the "
       "number of gallons must be smaller."),)),
    ("ounces", "ounce", "grams", "28.35", 28.349523125, (4, 6, 8, 12, 16, 20),
     (("2.835", "The decimal point in the factor is misplaced: 1 ounce ≈ {df} g."),)),
    ("hours", "hour", "minutes", "60", 60, (1.5, 2.25, 3.75, 4.5, 6.2, 0.75, 7.25),
     (("100", "An hour has 60 minutes, not 100, so decimal hours cannot be read off as "
       "minutes."),)),
    ("days", "day", "hours", "24", 24, (3, 7, 2.5, 14, 30, 1.75),
     (("12", "A day has 24 hours, not 12."),)),
    ("millilitres", "millilitre", "litres", "0.001", 0.001, (250, 330, 750, 1500, 2250, 85),
     (("0.01", "A litre is 1,000 millilitres, not 100, so the answer is ten times too big."),)),
    ("grams", "gram", "kilograms", "0.001", 0.001, (350, 1200, 2500, 750, 4600, 95),
     (("0.01", "A kilogram is 1,000 grams, not 100, so the answer is ten times too big."),)),
    ("hectares", "hectare", "square metres", "10,000", 10000, (2, 3.5, 0.8, 12, 0.25),
     (("1,000", "A hectare is 100 m × 100 m = 10,000 square metres, not 1,000."),)),
    ("metres per second", "metre per second", "km/h", "3.6", 3.6, (5, 10, 12, 25, 30, 340),
     (("0.2778", "That factor converts km/h to m/s. Going from m/s to km/h multiplies by "
       "{df}."),)),
    ("km/h", "km/h", "metres per second", "0.2778", 1 / 3.6, (18, 36, 54, 72, 90, 108, 120),
     (("3.6", "Multiplying by 3.6 converts m/s to km/h. To go from km/h to m/s, divide by 3.6 "
       "(multiply by about {df})."),)),
    ("nautical miles", "nautical mile", "kilometres", "1.852", 1.852, (3, 10, 25, 40, 200),
     (("1.609", "1.609 km is a statute (land) mile; a nautical mile is exactly {df} km."),)),
    ("stone", "stone", "kilograms", "6.35", 6.35029318, (9, 10, 11, 12.5, 14),
     (("14", "14 is the number of pounds in a stone; 1 stone ≈ {df} kg."),)),
    ("yards", "yard", "metres", "0.9144", 0.9144, (10, 25, 100, 220, 440),
     (("1.0936", "That is the metres-to-yards factor. 1 yard = {df} m, so the number of metres "
       "is smaller."),)),
)  # fmt: skip


def _factor_value(shown: str) -> float:
    return float(shown.replace(",", ""))


def _is_exact(shown: str, exact: float) -> bool:
    return abs(_factor_value(shown) - exact) < 1e-12


def _about(value: float) -> str:
    """``"about "`` unless ``value`` is shown exactly with two decimals."""
    return "" if abs(round(value, 2) - value) < 1e-9 else "about "


def _unit_linear(entry: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    from_pl, from_sing, to_pl, shown, exact, values, wrongs = entry
    value = rng.choice(values)
    wrong_shown, why = rng.choice(wrongs)
    why = why.format(df=shown)
    instruction = rng.choice(
        (
            f"Convert {num(value)} {from_pl} to {to_pl}.",
            f"How many {to_pl} are in {num(value)} {from_pl}?",
            f"What is {num(value)} {from_pl} in {to_pl}?",
            f"{num(value)} {from_pl} is how many {to_pl}?",
        )
    )
    exact_factor = _is_exact(shown, exact)
    right = value * (exact if exact_factor else _factor_value(shown))
    wrong = value * _factor_value(wrong_shown)
    approx = "=" if exact_factor else "≈"
    unit = f"1 {from_sing}" if from_sing != from_pl else "1"
    form = rng.randrange(3)
    if form == 0:
        good = f"{num(value)} {from_pl} is {_about(value * exact)}{num(value * exact)} {to_pl}."
        bad = f"{num(value)} {from_pl} is about {num(wrong)} {to_pl}."
        spans = [f"{num(wrong)} {to_pl}"]
    elif form == 1:
        good = f"Multiply by {shown}: {num(value)} × {shown} {approx} {num(right)} {to_pl}."
        bad = f"Multiply by {wrong_shown}: {num(value)} × {wrong_shown} = {num(wrong)} {to_pl}."
        spans = [f"Multiply by {wrong_shown}", f"= {num(wrong)}"]
    else:
        good = (
            f"Since {unit} {from_sing if unit == '1' else ''}".rstrip()
            + f" = {shown} {to_pl}, {num(value)} {from_pl} {approx} {num(right)} {to_pl}."
        )
        bad = (
            f"Since {unit} {from_sing if unit == '1' else ''}".rstrip()
            + f" = {wrong_shown} {to_pl}, {num(value)} {from_pl} = {num(wrong)} {to_pl}."
        )
        spans = [f"= {wrong_shown} {to_pl}", f"= {num(wrong)} {to_pl}"]
    about = _about(value * exact)
    judgment = rng.choice(
        (
            f"The factor is wrong. {why} {num(value)} {from_pl} is {about}"
            f"{num(value * exact)} {to_pl}, not {num(wrong)}.",
            f"{why} The correct result is {about}{num(value * exact)} {to_pl}.",
        )
    )
    return instruction, good, bad, judgment, spans


def _unit_temperature(rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    if rng.random() < 0.5:
        celsius = rng.choice((-10, -5, 0, 5, 12, 15, 18, 20, 22, 25, 28, 35, 37, 40, 180, 200))
        fahrenheit = Fraction(celsius) * 9 / 5 + 32
        instruction = rng.choice(
            (f"Convert {celsius} °C to Fahrenheit.", f"What is {celsius} degrees Celsius in °F?")
        )
        good = f"{celsius} × 9/5 + 32 = {num(fahrenheit)}, so {celsius} °C is {num(fahrenheit)} °F."
        wrong = Fraction(celsius) * 9 / 5
        bad = f"{celsius} × 9/5 = {num(wrong)}, so {celsius} °C is {num(wrong)} °F."
        judgment = (
            f"The response forgets to add 32. °F = °C × 9/5 + 32, so {celsius} °C is "
            f"{num(fahrenheit)} °F, not {num(wrong)} °F."
        )
        spans = [f"{celsius} × 9/5 = {num(wrong)}", f"is {num(wrong)} °F"]
        return instruction, good, bad, judgment, spans
    fahrenheit = rng.choice((14, 23, 41, 50, 59, 68, 77, 86, 95, 104, 113, 212, 350, 400))
    celsius = (Fraction(fahrenheit) - 32) * 5 / 9
    instruction = rng.choice(
        (
            f"Convert {fahrenheit} °F to Celsius.",
            f"What is {fahrenheit} degrees Fahrenheit in Celsius?",
        )
    )
    approx = "=" if celsius.denominator == 1 else "≈"
    good = f"({fahrenheit} − 32) × 5/9 {approx} {num(celsius, 1)}, so it is {num(celsius, 1)} °C."
    wrong = Fraction(fahrenheit) * 5 / 9 - 32
    bad = f"{fahrenheit} × 5/9 − 32 ≈ {num(wrong, 1)}, so it is {num(wrong, 1)} °C."
    judgment = (
        f"The steps are in the wrong order: subtract 32 first, then multiply by 5/9. "
        f"({fahrenheit} − 32) × 5/9 {approx} {num(celsius, 1)} °C, not {num(wrong, 1)} °C."
    )
    spans = [f"{fahrenheit} × 5/9 − 32 ≈ {num(wrong, 1)}", f"is {num(wrong, 1)} °C"]
    return instruction, good, bad, judgment, spans


def family_unit_factor(n: int, n_pos: int, rng: random.Random) -> list[dict]:
    builders: list[Callable[[random.Random], tuple]] = [
        (lambda r, e=entry: _unit_linear(e, r)) for entry in CONVERSIONS
    ]
    builders += [_unit_temperature, _unit_temperature]
    return numeric_rows("unit_conversion", builders, n, n_pos, rng)


# ---------------------------------------------------------------------------------------------------
# Family "format_constraint": the content is right, the requested format is not.
# Properly capitalised answers; the good response is the lowercased text.
LOWERCASE_QA = (
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth."),
    ("Which city is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by William Shakespeare."),
    ("Which river flows through Cairo?", "The Nile flows through Cairo."),
    ("On which continent is Kenya?", "Kenya is in Africa."),
    ("What language is mainly spoken in Brazil?", "The main language of Brazil is Portuguese."),
    ("Which planet is best known for its rings?", "Saturn is best known for its rings."),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What is the tallest mountain above sea level?", "Mount Everest is the tallest mountain."),
    ("In which city is the Eiffel Tower?", "The Eiffel Tower is in Paris."),
    ("Which sea lies between Europe and Africa?", "The Mediterranean Sea lies between them."),
    ("Who developed the theory of general relativity?", "Albert Einstein developed it."),
    ("What currency is used in Japan?", "Japan uses the yen."),
    ("Which country has the largest population in South America?", "Brazil has the largest."),
)
LOWERCASE_ASKS = (
    "Answer in lowercase letters only: {q}",
    "{q} Write your answer entirely in lowercase.",
    "Reply using only lowercase letters. {q}",
)
LIST_CATEGORIES = (
    ("countries in South America", ("Brazil", "Argentina", "Chile", "Peru", "Colombia", "Ecuador")),
    ("noble gases", ("Helium", "Neon", "Argon", "Krypton", "Xenon", "Radon")),
    ("planets in our solar system", ("Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune")),
    ("mammals that live in the sea", ("Whale", "Dolphin", "Seal", "Walrus", "Manatee", "Dugong")),
    ("programming languages", ("Python", "Java", "Rust", "Go", "JavaScript", "Ruby")),
    ("root vegetables", ("Carrot", "Potato", "Beetroot", "Turnip", "Parsnip", "Radish")),
    ("string instruments", ("Violin", "Cello", "Guitar", "Harp", "Viola", "Banjo")),
    ("Olympic sports", ("Swimming", "Rowing", "Fencing", "Judo", "Cycling", "Archery")),
    ("European capital cities", ("Paris", "Madrid", "Rome", "Berlin", "Lisbon", "Vienna")),
    ("renewable energy sources", ("Solar", "Wind", "Hydroelectric", "Geothermal", "Tidal")),
    ("plays by Shakespeare", ("Hamlet", "Macbeth", "Othello", "King Lear", "The Tempest")),
)
# (topic, description with an exact word count, phrase a careless answer adds before the full stop)
WORD_LIMITED = (
    ("the Moon", "Earth's only natural satellite, glowing with reflected sunlight.",
     " and shaping our ocean tides"),
    ("a library", "A quiet place where people borrow books for free.",
     ", use computers and study in peace"),
    ("autumn", "Cooler days, shorter evenings and leaves turning red and gold.",
     " before the first frosts arrive"),
    ("a bicycle", "A two-wheeled vehicle powered by pedals and steered with handlebars.",
     ", cheap to run and good for your health"),
    ("rain", "Water droplets falling from clouds when they grow too heavy.",
     ", filling rivers and watering crops"),
    ("a volcano", "An opening in Earth's crust where molten rock escapes.",
     " as lava, ash and gas"),
    ("coffee", "A bitter drink brewed from roasted beans.", ", enjoyed by millions every morning"),
    ("the internet", "A global network connecting billions of computers and phones.",
     " so that people can share information instantly"),
    ("a desert", "A dry region that receives very little rain each year.",
     ", often with sand dunes and extreme temperatures"),
    ("the heart", "A muscular organ that pumps blood around the body.",
     " through a network of arteries and veins"),
    ("snow", "Frozen water crystals that fall from clouds in cold weather.",
     " and cover the ground in white"),
    ("a lighthouse", "A tall tower whose bright light guides ships at night.",
     " past dangerous rocks and coastlines"),
    ("honeybees", "Social insects that make honey and pollinate flowering plants.",
     ", living in hives with a single queen"),
)  # fmt: skip
# (question, one-word answer, a wordy response, its extra words)
ONE_WORD = (
    ("What is the opposite of 'hot'?", "Cold.", "The opposite of hot is cold.",
     "The opposite of hot is"),
    ("What colour do you get by mixing blue and yellow paint?", "Green.",
     "Mixing blue and yellow paint gives you green.", "Mixing blue and yellow paint gives you"),
    ("What is the fastest land animal?", "Cheetah.", "The fastest land animal is the cheetah.",
     "The fastest land animal is the"),
    ("Which organ pumps blood through the body?", "Heart.",
     "The heart pumps blood through the body.", "pumps blood through the body"),
    ("What sweet food do bees make?", "Honey.", "Bees make honey from flower nectar.",
     "from flower nectar"),
    ("What is the capital of Italy?", "Rome.", "The capital of Italy is Rome.",
     "The capital of Italy is"),
    ("Which metal is liquid at room temperature?", "Mercury.",
     "Mercury is the metal that is liquid at room temperature.",
     "is the metal that is liquid at room temperature"),
    ("Which animal is known as the king of the jungle?", "Lion.",
     "The lion is known as the king of the jungle.", "is known as the king of the jungle"),
    ("What is the main ingredient of guacamole?", "Avocado.",
     "The main ingredient of guacamole is avocado.", "The main ingredient of guacamole is"),
    ("In which season do many trees lose their leaves?", "Autumn.",
     "Many trees lose their leaves in autumn.", "Many trees lose their leaves in"),
    ("What is the star at the centre of our solar system called?", "Sun.",
     "It is called the Sun.", "It is called the"),
)  # fmt: skip
# (question, a one-sentence answer, an extra sentence a careless answer adds)
ONE_SENTENCE = (
    ("Why is the sky blue?",
     "The sky looks blue because air molecules scatter blue sunlight more than red light.",
     "This effect is called Rayleigh scattering."),
    ("Why do we have leap years?",
     "A year is about 365.25 days long, so an extra day every four years keeps the calendar "
     "in step with Earth's orbit.", "That extra day is 29 February."),
    ("What does a barometer measure?", "A barometer measures air pressure.",
     "Falling pressure often means bad weather is coming."),
    ("What causes ocean tides?",
     "Tides are caused mainly by the Moon's gravity pulling on Earth's oceans, with a smaller "
     "pull from the Sun.", "Most coasts get two high tides a day."),
    ("What is photosynthesis?",
     "Photosynthesis is the process in which plants use sunlight, water and carbon dioxide to "
     "make sugar and release oxygen.", "It takes place mainly in the leaves."),
    ("Why do onions make your eyes water?",
     "Cutting an onion releases a gas that irritates your eyes, so they make tears to wash it "
     "away.", "Chilling the onion first can help."),
    ("How does a rainbow form?",
     "A rainbow forms when sunlight is refracted, reflected and split into colours inside "
     "raindrops.", "You see one with the Sun behind you and rain in front of you."),
    ("Why does metal feel colder than wood in the same room?",
     "Metal conducts heat away from your skin much faster than wood, so it feels colder.",
     "Both are actually at the same temperature."),
    ("Why do we get hiccups?",
     "Hiccups happen when the diaphragm suddenly contracts and the vocal cords snap shut, "
     "making the 'hic' sound.", "They usually stop on their own within minutes."),
)  # fmt: skip
# (what to describe, the "name" value, the second key, its value)
JSON_FACTS = (
    ("the chemical element with atomic number 8", "oxygen", "symbol", "O"),
    ("the planet closest to the Sun", "Mercury", "position_from_sun", 1),
    ("the author of Don Quixote", "Miguel de Cervantes", "country", "Spain"),
    ("the composer of the Moonlight Sonata", "Ludwig van Beethoven", "birthplace", "Bonn"),
    ("the tallest mountain above sea level", "Mount Everest", "continent", "Asia"),
    ("the chemical element with atomic number 26", "iron", "symbol", "Fe"),
    ("the capital of Kenya", "Nairobi", "country", "Kenya"),
    ("the longest river in Africa", "Nile", "continent", "Africa"),
)
JSON_CHATTER = (
    ("Sure! Here is the JSON:\n", ""),
    ("", "\nLet me know if you need anything else!"),
    ("Here you go:\n", ""),
    ("", "\nI hope this helps."),
)


def _fmt_lowercase(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    question, proper = item
    instruction = rng.choice(LOWERCASE_ASKS).format(q=question)
    good = proper.lower()
    words_bad, words_good = proper.split(), good.split()
    spans, current = [], []
    for bad_word, good_word in zip(words_bad, words_good, strict=True):
        if bad_word != good_word:
            current.append(bad_word.rstrip(".,"))
        elif current:
            spans.append(" ".join(current))
            current = []
    if current:
        spans.append(" ".join(current))
    quoted = ", ".join(f'"{span}"' for span in spans)
    judgment = rng.choice(
        (
            f"The answer is correct, but the instruction asked for lowercase only and the response "
            f"capitalises {quoted}.",
            f"Right content, wrong format: {quoted} should be written in lowercase, as requested.",
        )
    )
    return instruction, good, proper, judgment, spans


def _fmt_bullets(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    category, members = item
    count = rng.randint(3, len(members) - 1)
    chosen = rng.sample(members, count + 1)
    good = "\n".join(f"- {member}" for member in chosen[:count])
    if rng.random() < 0.5:
        instruction = rng.choice(
            (
                f"List exactly {count} {category} as bullet points.",
                f"Give {count} {category}, one per bullet point.",
            )
        )
        extra = f"- {chosen[count]}"
        bad = f"{good}\n{extra}"
        judgment = (
            f"The instruction asked for {count} items, but the response lists {count + 1}. "
            f'The last bullet, "{extra}", should be removed.'
        )
        return instruction, good, bad, judgment, [extra]
    instruction = f"List {count} {category} as bullet points, with no introduction or comments."
    intro = rng.choice((f"Here are {count} {category}:", f"Sure! {count} {category}:"))
    bad = f"{intro}\n{good}"
    judgment = (
        f"The list itself is fine, but the instruction said no introduction, and the response "
        f'opens with "{intro}".'
    )
    return instruction, good, bad, judgment, [intro]


def _fmt_words(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    topic, good, extra = item
    count = len(good.split())
    instruction = rng.choice(
        (
            f"Describe {topic} in exactly {count} words.",
            f"Write a description of {topic} that is exactly {count} words long.",
        )
    )
    bad = good[:-1] + extra + "."
    span = extra.lstrip(", ")
    judgment = (
        f"The description is accurate, but it has {len(bad.split())} words instead of exactly "
        f'{count}: the added phrase "{span}" should be dropped.'
    )
    return instruction, good, bad, judgment, [span]


def _fmt_one_word(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    question, word, bad, extra = item
    instruction = rng.choice(
        (f"Answer with one word only: {question}", f"{question} Reply with a single word.")
    )
    judgment = (
        f'The answer is correct, but only one word was allowed; "{extra}" should be left out, '
        f'leaving just "{word}"'
    )
    return instruction, word, bad, judgment, [extra]


def _fmt_one_sentence(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    question, sentence, extra = item
    instruction = rng.choice(
        (f"Answer in a single sentence: {question}", f"{question} Use one sentence only.")
    )
    judgment = (
        f"The first sentence answers the question well, but the instruction allowed one sentence "
        f'and the response adds a second: "{extra}"'
    )
    return instruction, sentence, f"{sentence} {extra}", judgment, [extra]


def _fmt_json(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    what, name, key, value = item
    instruction = f'Give {what} as JSON with the keys "name" and "{key}", and nothing else.'
    good = json.dumps({"name": name, key: value}, ensure_ascii=False)
    before, after = rng.choice(JSON_CHATTER)
    bad = f"{before}{good}{after}"
    chatter = (before or after).strip()
    judgment = (
        f'The JSON is correct, but the instruction asked for nothing else, so "{chatter}" '
        f"makes the reply invalid for a program that parses it."
    )
    return instruction, good, bad, judgment, [chatter]


FORMAT_PLAN = (  # (builder, bank, how many records)
    (_fmt_lowercase, LOWERCASE_QA, 13),
    (_fmt_bullets, LIST_CATEGORIES, 11),
    (_fmt_words, WORD_LIMITED, 12),
    (_fmt_one_word, ONE_WORD, 10),
    (_fmt_one_sentence, ONE_SENTENCE, 9),
    (_fmt_json, JSON_FACTS, 7),
)


def family_format_constraint(n: int, n_pos: int, rng: random.Random) -> list[dict]:
    jobs = [(build, bank[k]) for build, bank, count in FORMAT_PLAN for k in range(count)]
    assert len(jobs) == n, (len(jobs), n)
    rng.shuffle(jobs)
    rows = []
    for (build, item), good_label in zip(jobs, pick_labels(n, n_pos, rng), strict=True):
        instruction, good, bad, judgment, spans = build(item, rng)
        if good_label:
            rows.append(positive("format", instruction, good, rng))
        else:
            rows.append(record("format", instruction, bad, judgment, good, spans))
    return rows


# ---------------------------------------------------------------------------------------------------
# Family "fact_table": capitals, dates and element symbols from a small hand-made table.
# (country, capital, the city a careless answer names, what the reviewer explains)
CAPITALS = (
    ("Australia", "Canberra", "Sydney", "Sydney is the largest city, not the capital."),
    ("Turkey", "Ankara", "Istanbul", "Istanbul is the largest city; Ankara has been the capital "
     "since 1923."),
    ("Brazil", "Brasília", "Rio de Janeiro", "Rio de Janeiro was the capital until 1960."),
    ("New Zealand", "Wellington", "Auckland", "Auckland is the largest city, not the capital."),
    ("Morocco", "Rabat", "Casablanca", "Casablanca is the largest city, not the capital."),
    ("Nigeria", "Abuja", "Lagos", "Lagos was the capital until 1991."),
    ("Vietnam", "Hanoi", "Ho Chi Minh City", "Ho Chi Minh City is the largest city."),
    ("Pakistan", "Islamabad", "Karachi", "Karachi was the first capital and is the largest city."),
    ("Kazakhstan", "Astana", "Almaty", "Almaty was the capital until 1997."),
    ("Ecuador", "Quito", "Guayaquil", "Guayaquil is the largest city, not the capital."),
    ("Cameroon", "Yaoundé", "Douala", "Douala is the largest city, not the capital."),
    ("the United States", "Washington, D.C.", "New York City", "New York City is the largest "
     "city, not the capital."),
    ("India", "New Delhi", "Mumbai", "Mumbai is the financial centre, not the capital."),
    ("China", "Beijing", "Shanghai", "Shanghai is the largest city, not the capital."),
    ("Germany", "Berlin", "Bonn", "Bonn was the capital of West Germany until reunification in "
     "1990."),
    ("Italy", "Rome", "Milan", "Milan is the main financial centre, not the capital."),
    ("Spain", "Madrid", "Barcelona", "Barcelona is the second-largest city."),
    ("Egypt", "Cairo", "Alexandria", "Alexandria was the capital in ancient times."),
    ("Kenya", "Nairobi", "Mombasa", "Mombasa is the main port, not the capital."),
    ("Russia", "Moscow", "Saint Petersburg", "Saint Petersburg was the capital until 1918."),
    ("Poland", "Warsaw", "Kraków", "Kraków was the capital until the late 16th century."),
    ("Portugal", "Lisbon", "Porto", "Porto is the second-largest city."),
    ("Greece", "Athens", "Thessaloniki", "Thessaloniki is the second-largest city."),
    ("Chile", "Santiago", "Valparaíso", "Valparaíso is where the National Congress meets, but "
     "Santiago is the capital."),
    ("Colombia", "Bogotá", "Medellín", "Medellín is the second-largest city."),
    ("Saudi Arabia", "Riyadh", "Jeddah", "Jeddah is the main Red Sea port, not the capital."),
    ("the United Arab Emirates", "Abu Dhabi", "Dubai", "Dubai is the most populous city, not the "
     "capital."),
    ("Belize", "Belmopan", "Belize City", "Belize City was the capital until 1970."),
    ("Norway", "Oslo", "Bergen", "Bergen is the second-largest city."),
    ("South Korea", "Seoul", "Busan", "Busan is the second-largest city."),
    ("Ireland", "Dublin", "Cork", "Cork is the second-largest city."),
)  # fmt: skip
# (question, answer with "{y}" for the year, the year)
DATES = (
    ("In what year did the Battle of Hastings take place?",
     "The Battle of Hastings took place in {y}.", 1066),
    ("When was Magna Carta sealed?", "Magna Carta was sealed by King John in {y}.", 1215),
    ("In which year did Christopher Columbus first reach the Americas?",
     "Columbus first reached the Americas in {y}.", 1492),
    ("When did the storming of the Bastille happen?", "The Bastille was stormed on 14 July {y}.",
     1789),
    ("In what year was the US Declaration of Independence adopted?",
     "It was adopted on 4 July {y}.", 1776),
    ("When did the Titanic sink?", "The Titanic sank in April {y}, on its maiden voyage.", 1912),
    ("When did the Second World War end?", "The Second World War ended in {y}.", 1945),
    ("In which year did the Wright brothers make their first powered flight?",
     "The Wright brothers first flew at Kitty Hawk in December {y}.", 1903),
    ("When did Constantinople fall to the Ottomans?",
     "Constantinople fell to the Ottomans in {y}.", 1453),
    ("When were euro banknotes and coins introduced?",
     "Euro notes and coins came into circulation on 1 January {y}.", 2002),
    ("When was the Soviet Union dissolved?", "The Soviet Union was dissolved in December {y}.",
     1991),
    ("When did Nelson Mandela become President of South Africa?",
     "Nelson Mandela became President of South Africa in {y}.", 1994),
    ("When was Sputnik 1 launched?", "Sputnik 1 was launched in October {y}.", 1957),
    ("When did the Chernobyl nuclear disaster happen?",
     "The Chernobyl disaster happened in April {y}.", 1986),
    ("When was William Shakespeare born?",
     "Shakespeare was born in Stratford-upon-Avon in {y}.", 1564),
    ("When did Charles Darwin publish On the Origin of Species?",
     "Darwin published On the Origin of Species in {y}.", 1859),
    ("When did Queen Victoria's reign begin?", "Victoria became queen in {y}.", 1837),
    ("When did the American Civil War end?", "The American Civil War ended in {y}.", 1865),
    ("When did the Panama Canal open?", "The Panama Canal opened in {y}.", 1914),
    ("When did Yuri Gagarin become the first person in space?",
     "Yuri Gagarin orbited Earth in April {y}.", 1961),
    ("When was the Eiffel Tower completed?",
     "The Eiffel Tower was completed in {y} for the World's Fair in Paris.", 1889),
    ("In which year did India gain independence?",
     "India became independent on 15 August {y}.", 1947),
    ("When did the Wall Street Crash happen?", "The Wall Street Crash happened in October {y}.",
     1929),
    ("When did the Russian Revolution take place?", "The Russian Revolution took place in {y}.",
     1917),
)  # fmt: skip
# (element, symbol, a wrong symbol, the reviewer's note)
SYMBOLS = (
    ("sodium", "Na", "So", "Na comes from the Latin natrium; So is not an element symbol."),
    ("potassium", "K", "P", "P is phosphorus; potassium's K comes from kalium."),
    ("iron", "Fe", "Ir", "Ir is iridium; iron's Fe comes from the Latin ferrum."),
    ("silver", "Ag", "Si", "Si is silicon; silver's Ag comes from the Latin argentum."),
    ("lead", "Pb", "Le", "Pb comes from the Latin plumbum; Le is not an element symbol."),
    ("tin", "Sn", "Ti", "Ti is titanium; tin's Sn comes from the Latin stannum."),
    ("copper", "Cu", "Co", "Co is cobalt; copper's Cu comes from the Latin cuprum."),
    ("mercury", "Hg", "Me", "Hg comes from the Latin hydrargyrum; Me is not an element symbol."),
    ("tungsten", "W", "Tu", "W comes from wolfram; Tu is not an element symbol."),
    ("magnesium", "Mg", "Mn", "Mn is manganese."),
)
CAPITAL_ASKS = (
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "Name the capital city of {c}.",
    "What city serves as the capital of {c}?",
)
CAPITAL_SAYS = ("The capital of {c} is {x}.", "{x} is the capital of {c}.", "It's {x}.")
SYMBOL_ASKS = (
    "What is the chemical symbol for {e}?",
    "Which symbol does {e} have on the periodic table?",
)
SYMBOL_SAYS = ("The chemical symbol for {e} is {s}.", "{E} has the symbol {s}.")


def _fact_capital(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    country, capital, wrong, note = item
    instruction = rng.choice(CAPITAL_ASKS).format(c=country)
    say = rng.choice(CAPITAL_SAYS)
    good = say.format(c=country, x=capital).replace("..", ".")  # "It's Washington, D.C."
    bad = say.format(c=country, x=wrong)
    judgment = rng.choice(
        (
            f"The capital of {country} is {capital}, not {wrong}. {note}",
            f"Incorrect. {note} The capital of {country} is {capital}.",
        )
    )
    return instruction, good, bad, judgment, [wrong]


def _fact_date(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    question, answer, year = item
    wrong = year + rng.choice((-11, -10, -3, -2, -1, 1, 2, 3, 10, 11, 100))
    good, bad = answer.format(y=year), answer.format(y=wrong)
    judgment = rng.choice(
        (
            f"The year is wrong: it was {year}, not {wrong}.",
            f"The date is off by {abs(wrong - year)} year{'s' if abs(wrong - year) > 1 else ''}. "
            f"The correct year is {year}.",
            f"{wrong} is incorrect. {good}",
        )
    )
    return question, good, bad, judgment, [str(wrong)]


def _fact_symbol(item: tuple, rng: random.Random) -> tuple[str, str, str, str, list[str]]:
    element, symbol, wrong, note = item
    instruction = rng.choice(SYMBOL_ASKS).format(e=element)
    say = rng.choice(SYMBOL_SAYS)
    good = say.format(e=element, E=element.capitalize(), s=symbol)
    bad = say.format(e=element, E=element.capitalize(), s=wrong)
    judgment = f"The symbol for {element} is {symbol}, not {wrong}. {note}"
    span = wrong if bad.count(wrong) == 1 else f" {wrong}."
    return instruction, good, bad, judgment, [span]


FACT_PLAN = ((_fact_capital, CAPITALS, 31), (_fact_date, DATES, 24), (_fact_symbol, SYMBOLS, 10))


def family_fact_table(n: int, n_pos: int, rng: random.Random) -> list[dict]:
    jobs = [(build, bank[k]) for build, bank, count in FACT_PLAN for k in range(count)]
    assert len(jobs) == n, (len(jobs), n)
    rng.shuffle(jobs)
    rows = []
    for (build, item), good_label in zip(jobs, pick_labels(n, n_pos, rng), strict=True):
        instruction, good, bad, judgment, spans = build(item, rng)
        answer = str(item[2]) if build is _fact_date else item[1]  # the year, capital or symbol
        if good_label:
            rows.append(positive("factual", instruction, good, rng, answer))
        else:
            rows.append(record("factual", instruction, bad, judgment, good, spans, answer=answer))
    return rows


# ---------------------------------------------------------------------------------------------------
# Assembly: merge, number, validate, split, write.
# (family name, generator, records, positives among them)
FAMILIES: tuple[tuple[str, Callable[[int, int, random.Random], list[dict]], int, int], ...] = (
    ("arithmetic_word", family_arithmetic_word, 64, 17),
    ("unit_factor", family_unit_factor, 62, 17),
    ("format_constraint", family_format_constraint, 62, 17),
    ("fact_table", family_fact_table, 65, 18),
)
MAX_FAMILY_SHARE = 0.25
MIN_HANDWRITTEN = 150


def load_handwritten(path: Path = HANDWRITTEN) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if set(row) != set(FIELDS) - {"id", "answer"}:
                raise ValueError(f"{path}:{number}: fields {sorted(row)}")
            rows.append({name: row.get(name) for name in FIELDS[1:]})
    return rows


def build_records() -> list[dict]:
    """Every record, numbered, hand-written ones first, then the families in FAMILIES order."""
    rows = [{**row, "source": "handwritten"} for row in load_handwritten()]
    for name, generate, count, n_pos in FAMILIES:
        family = generate(count, n_pos, random.Random(f"{SEED}:{name}"))
        rows += [{**row, "source": f"generated:{name}"} for row in family]
    return [{"id": f"jd-{k:04d}", **row} for k, row in enumerate(rows, start=1)]


def validate(rows: list[dict], starter_instructions: set[str] = frozenset()) -> None:
    """Raise ValueError on the first record that breaks the datasheet's rules."""
    pairs = set()
    for row in rows:
        where = row["id"]
        if list(row) != [*FIELDS, "source"]:
            raise ValueError(f"{where}: fields {list(row)}")
        if row["kind"] not in KINDS:
            raise ValueError(f"{where}: unknown kind {row['kind']!r}")
        if not (row["instruction"].strip() and row["output"].strip()):
            raise ValueError(f"{where}: empty instruction or output")
        if row["instruction"] in starter_instructions:
            raise ValueError(f"{where}: instruction taken from the starter set")
        pair = (row["instruction"], row["input"], row["output"])
        if pair in pairs:
            raise ValueError(f"{where}: duplicate instruction, input and output")
        pairs.add(pair)
        if is_positive(row):
            if row["refinement"] is not None or row["error_spans"]:
                raise ValueError(f"{where}: a positive has a refinement or error spans")
            continue
        if not row["refinement"] or row["refinement"] == row["output"]:
            raise ValueError(f"{where}: a negative needs a refinement that differs from output")
        if not row["error_spans"]:
            raise ValueError(f"{where}: a negative needs at least one error span")
        for span in row["error_spans"]:
            if not span.strip() or row["output"].count(span) != 1:
                raise ValueError(f"{where}: span {span!r} must occur exactly once in output")
    sources = Counter(row["source"] for row in rows)
    if sources["handwritten"] < MIN_HANDWRITTEN:
        raise ValueError(f"only {sources['handwritten']} hand-written records")
    for source, count in sources.items():
        if source != "handwritten" and count > MAX_FAMILY_SHARE * len(rows):
            raise ValueError(f"{source}: {count} of {len(rows)} records is more than 25%")


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """About TEST_SHARE of every (kind, label) stratum goes to test; records that share their
    instruction and input stay in the same split."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["instruction"], row["input"]), []).append(row)
    strata: dict[tuple[str, bool], list[list[dict]]] = {}
    for group in groups.values():
        strata.setdefault((group[0]["kind"], is_positive(group[0])), []).append(group)
    train, test = [], []
    for (kind, label), members in sorted(strata.items()):
        rng = random.Random(f"{SEED}:split:{kind}:{label}")
        rng.shuffle(members)
        goal = round(TEST_SHARE * sum(len(group) for group in members))
        taken = 0
        for group in members:
            if taken < goal:
                test += group
                taken += len(group)
            else:
                train += group
    return sorted(train, key=lambda r: r["id"]), sorted(test, key=lambda r: r["id"])


def write_jsonl(path: Path, rows: list[dict]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")


def counts_table(train: list[dict], test: list[dict]) -> str:
    lines = [
        "| kind | train pos | train neg | test pos | test neg | total |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0]
    for kind in KINDS:
        cells = [
            sum(1 for r in rows if r["kind"] == kind and is_positive(r) == label)
            for rows in (train, test)
            for label in (True, False)
        ]
        totals = [a + b for a, b in zip(totals, cells, strict=True)]
        lines.append(f"| {kind} | " + " | ".join(map(str, cells)) + f" | {sum(cells)} |")
    lines.append(
        "| **all** | " + " | ".join(f"**{c}**" for c in totals) + f" | **{sum(totals)}** |"
    )
    everything = train + test
    share = sum(map(is_positive, everything)) / len(everything)
    lines.append(f"\npositive share {share:.3f} (train {len(train)}, test {len(test)})")
    for source, count in sorted(Counter(r["source"] for r in everything).items()):
        lines.append(f"{source}: {count} ({count / len(everything):.1%})")
    return "\n".join(lines)


def starter_instructions() -> set[str]:
    found = set()
    for path in sorted((ROOT / "data" / "starter").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.add(json.loads(line)["instruction"])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DATA, help="output folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    rows = build_records()
    validate(rows, starter_instructions())
    train, test = split(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "train.jsonl", train)
    write_jsonl(args.out / "test.jsonl", test)
    print(counts_table(train, test))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
