"""IFEval's reference instruction checkers against cutkit's own, constraint by constraint.

Two sets of responses, each scored by both checkers (:func:`cutkit.online.ifeval.agreement`):

1. **held-out answers**: every answer in ``benchmarks/onpolicy/answers.csv`` (all arms and
   seeds of the on-policy experiment; word-limit tasks rebuilt with ``make_tasks(PRESETS["cpu"])``
   and matched by task id). The checkers are compared on the text as it is, finished or not.
2. **synthetic**: ``generate_tasks(N_TASKS, seed=SEED)`` across every family; per task, fixed
   responses built from its topic words: one that satisfies every constraint and one per
   constraint that breaks it (*ordinary*), plus *probes* of each kind's known edge cases.

Every disagreement on a word limit is put in a class by what makes IFEval's ``\\w+`` count differ
from cutkit's whitespace count.

    python benchmarks/ifeval_agreement/ifeval_agreement.py --out benchmarks/ifeval_agreement
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

# the on-policy experiment's tasks and answers: benchmarks/onpolicy/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onpolicy"))
from onpolicy_experiment import PRESETS, make_tasks

from cutkit.online.generator import TOPICS, generate_tasks
from cutkit.online.ifeval import IFEVAL_INSTRUCTIONS, UNMAPPED, agreement
from cutkit.online.tasks import Task

HERE = Path(__file__).resolve().parent
ANSWERS = HERE.parent / "onpolicy" / "answers.csv"
N_TASKS, SEED = 270, 7
TOPIC_WORDS = dict(TOPICS)
_SEPARATOR = re.compile(r"(?<=\w)(\W+)(?=\w)")


# ----------------------------------------------------------------------------- word counts


def split_classes(text: str) -> Counter:
    """Why IFEval's ``\\w+`` count differs from the whitespace count, per cause: one count per
    extra ``\\w+`` token inside a whitespace word (apostrophe, hyphen, number, other punctuation)
    and per whitespace word with no ``\\w`` at all (symbol-only word, one count fewer)."""
    causes: Counter = Counter()
    for word in text.split():
        if not re.search(r"\w", word):
            causes["symbol-only word"] += 1
        for sep in _SEPARATOR.findall(word):
            if sep in ("'", "\u2019"):
                causes["apostrophe"] += 1
            elif set(sep) <= {"-", "\u2010", "\u2011", "\u2013"}:
                causes["hyphen"] += 1
            elif sep in (".", ",", ":") and re.search(rf"\d{re.escape(sep)}\d", word):
                causes["number"] += 1
            else:
                causes["other punctuation"] += 1
    return causes


def word_class(text: str) -> str:
    """The causes of a word-count difference, joined with " + " (sorted)."""
    return " + ".join(sorted(split_classes(text))) or "none"


# ----------------------------------------------------------------------------- held-out answers


def heldout_rows() -> pd.DataFrame:
    answers = pd.read_csv(ANSWERS, keep_default_na=False)
    tasks = {t.id: t for t in make_tasks(PRESETS["cpu"])["heldout"]}
    missing = set(answers.task) - set(tasks)
    if missing:
        raise ValueError(
            f"{ANSWERS}: tasks {sorted(missing)[:5]} are not make_tasks' held-out ones"
        )
    frame = agreement([tasks[t] for t in answers.task], list(answers.response))
    frame = frame.join(answers[["arm", "seed", "finished", "response"]], on="row")
    frame["finished"] = frame.finished.astype(str) == "True"
    frame["blank"] = frame.response.str.strip() == ""
    frame["n"] = [tasks[t].constraints[0].params["n"] for t in frame.task]
    frame["words_whitespace"] = [len(r.split()) for r in frame.response]
    frame["words_ifeval"] = [len(re.findall(r"\w+", r)) for r in frame.response]
    frame["class"] = [
        "" if agree else word_class(r) for agree, r in zip(frame.agree, frame.response, strict=True)
    ]
    return frame


# ----------------------------------------------------------------------------- synthetic


def _params(task: Task) -> dict[str, dict]:
    return {c.kind: c.params for c in task.constraints}


def _prose(task: Task, words: int | None = None) -> str:
    """Two plain sentences about the task's topic (its words; the excluded one left out), or
    exactly ``words`` whitespace words of such text; lowercase when the task asks for it."""
    p = _params(task)
    topic = task.topic or "numbers"
    pool = list(TOPIC_WORDS.get(topic, ("sums", "products")))
    if "exclude_word" in p:
        excluded = p["exclude_word"]["word"]
        pool = [w for w in pool if w != excluded]
        if re.search(rf"\b{excluded}\b", topic, re.IGNORECASE):
            topic = "this topic"
    if "include_word" in p:
        pool = [p["include_word"]["word"], *pool]
    text = (
        f"{topic[0].upper() + topic[1:]} is a subject that many people find interesting. "
        f"It is often described in terms of {pool[0]} and {pool[1]}."
    )
    if words is not None:
        filler = text.split()
        text = " ".join(filler[i % len(filler)] for i in range(words))
    return text.lower() if "lowercase" in p else text


def complies(task: Task) -> str:
    """A response that satisfies every constraint of ``task``."""
    p = _params(task)
    if "arithmetic" in p:
        return str(p["arithmetic"]["answer"])
    if "json_keys" in p:
        words = TOPIC_WORDS[task.topic]
        return json.dumps(
            {k: f"{task.topic}: {words[i % 3]}" for i, k in enumerate(p["json_keys"]["keys"])}
        )
    if "numbered_list" in p:
        words = TOPIC_WORDS[task.topic]
        lines = [
            f"{i}. {task.topic} and {words[i % 3]}." for i in range(1, p["numbered_list"]["n"] + 1)
        ]
        text = "\n".join(lines)
        return text.lower() if "lowercase" in p else text
    if task.family == "max_words":
        return _prose(task, p["max_words"]["n"])
    text = _prose(task)
    return f"{text} {p['end_with']['phrase']}" if "end_with" in p else text


def breaks(task: Task, kind: str) -> str:
    """A response that breaks the task's ``kind`` constraint (ordinary, not an edge case)."""
    p, text = _params(task), complies(task)
    if kind == "lowercase":
        return "Note: " + text
    if kind == "max_words":
        return _prose(task, p["max_words"]["n"] + 1)
    if kind == "include_word":
        return re.sub(re.escape(p["include_word"]["word"]), "it", text, flags=re.IGNORECASE)
    if kind == "exclude_word":
        return f"{text} It is also about {p['exclude_word']['word']}."
    if kind == "no_commas":
        first, rest = text.split(" ", 1)
        return f"{first}, {rest}"
    if kind == "end_with":
        return _prose(task)
    if kind == "json_keys":
        return "Here is the JSON: " + text
    raise ValueError(f"no breaking response for kind {kind!r}")


def probes(task: Task, kind: str) -> dict[str, str]:
    """Edge cases of ``kind`` where the two checkers' rules differ (or might)."""
    p, text = _params(task), complies(task)
    out = {"blank response": ""}
    if kind == "max_words":
        n = p["max_words"]["n"]
        base = _prose(task, n - 1).rstrip(".").split()
        out |= {
            "contraction at the limit": " ".join([*base, "it's"]),
            "hyphenated word at the limit": " ".join([*base, "well-known"]),
            "decimal number at the limit": " ".join([*base, "3.5"]),
            "dash word one over the limit": " ".join([*base[:-1], "\u2014", *base[-1:], "too"]),
        }
    elif kind == "lowercase":
        out |= {
            "no letters": "42.",
            "lowercase, not English": "le volcan est une montagne qui crache de la lave.",
        }
    elif kind == "include_word":
        word = p["include_word"]["word"]
        out |= {
            "word only inside a longer word": re.sub(
                re.escape(word), "super" + word.lower(), text, flags=re.IGNORECASE
            ),
            "word in capitals": re.sub(re.escape(word), word.upper(), text, flags=re.IGNORECASE),
        }
    elif kind == "exclude_word":
        word = p["exclude_word"]["word"]
        out |= {
            "word only inside a longer word": f"{text} It is also about super{word.lower()}.",
            "word in capitals": f"{text} It is also about {word.upper()}.",
        }
    elif kind == "no_commas":
        out |= {"fullwidth comma": text.replace(" ", "\uff0c ", 1)}
    elif kind == "end_with":
        phrase, prose = p["end_with"]["phrase"], _prose(task)
        out |= {
            "phrase in lowercase": f"{prose} {phrase.lower()}",
            "phrase then a closing quote": f'"{prose} {phrase}"',
            "phrase then a newline": f"{prose} {phrase}\n",
            "phrase then more text": f"{prose} {phrase} Bye.",
        }
    elif kind == "json_keys":
        out |= {
            "json-tagged fence": f"```json\n{text}\n```",
            "python-tagged fence": f"```python\n{text}\n```",
            "wrong keys": json.dumps({"other": "value"}),
            "JSON array": f"[{text}]",
            "trailing comma": text[:-1] + ",}",
        }
    return out


def synthetic_rows() -> pd.DataFrame:
    tasks = generate_tasks(N_TASKS, seed=SEED)
    cases = []  # (task, variant, group, target kind or None, text)
    for task in tasks:
        cases.append((task, "complies", "ordinary", None, complies(task)))
        for c in task.constraints:
            if c.kind in IFEVAL_INSTRUCTIONS:
                cases.append((task, f"breaks {c.kind}", "ordinary", None, breaks(task, c.kind)))
                for name, text in probes(task, c.kind).items():
                    cases.append((task, name, "probe", c.kind, text))
    frame = agreement([c[0] for c in cases], [c[4] for c in cases])
    meta = pd.DataFrame(
        [(c[0].family, c[1], c[2], c[3], c[4]) for c in cases],
        columns=["family", "variant", "group", "target", "response"],
    )
    frame = frame.join(meta, on="row")
    keep = (frame.group == "ordinary") | (frame.target == frame.kind)
    return frame[keep].drop(columns="target").reset_index(drop=True)


# ----------------------------------------------------------------------------- report


WHY = {
    "blank response": "IFEval's strict protocol: a blank response follows no instruction",
    "contraction at the limit": '"it\'s" is 1 whitespace word, 2 `\\w+` tokens',
    "hyphenated word at the limit": '"well-known" is 1 whitespace word, 2 `\\w+` tokens',
    "decimal number at the limit": '"3.5" is 1 whitespace word, 2 `\\w+` tokens',
    "dash word one over the limit": "a lone dash is a whitespace word but no `\\w+` token",
    "no letters": "`str.islower()` is False without a cased letter",
    "lowercase, not English": "IFEval also needs langdetect to say English",
    "python-tagged fence": "IFEval strips only a json-tagged or untagged opening fence; "
    "cutkit's fence takes any tag",
    "wrong keys": "`json_format` does not check keys (cutkit's full verdict: not ok)",
    "JSON array": "`json_format` takes any JSON value; `json_keys` needs one object",
    "word only inside a longer word": "`keywords:existence` is a substring search; "
    "`forbidden_words` and cutkit match whole words",
    "phrase in lowercase": "`end_checker` lowercases both sides",
    "phrase then a closing quote": '`end_checker` strips `"` from both ends',
}
"""Why the two checkers can differ on each probe (blank response: cutkit's verdict is its rule's
on empty text)."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cell(text: str, width: int = 90) -> str:
    text = text if len(text) < width else text[: width - 3] + "..."
    return '"' + text.replace("|", "\\|").replace("\n", "\\n").replace("`", "'") + '"'


def _table(frame: pd.DataFrame, by: list[str], *, full: bool = False, why: bool = False) -> str:
    stats = frame.groupby(by, sort=False).agg(
        n=("agree", "size"),
        full=("cutkit_ok", "mean"),
        cutkit=("covered_ok", "mean"),
        ifeval=("ifeval_ok", "mean"),
        agree=("agree", "mean"),
        disagree=("agree", lambda a: int((~a).sum())),
    )
    heads = [*by, "n", *(["cutkit ok (full)"] if full else [])]
    heads += ["cutkit ok", "IFEval ok", "agreement", "disagreements", *(["why"] if why else [])]
    lines = [
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(by) + "---:|" * (len(heads) - len(by) - why) + "---|" * why,
    ]
    for key, r in zip(stats.index, stats.itertuples(index=False), strict=True):
        keys = key if isinstance(key, tuple) else (key,)
        cells = [f"`{k}`" if b in ("kind", "arm") else k for b, k in zip(by, keys, strict=True)]
        cells += [str(r.n), *([_pct(r.full)] if full else [])]
        cells += [_pct(r.cutkit), _pct(r.ifeval), _pct(r.agree), str(r.disagree)]
        if why:
            explained = r.disagree or r.full != r.cutkit
            cells.append(WHY.get(keys[-1], "") if explained else "same rule")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _classes(dis: pd.DataFrame) -> str:
    classes = dis.groupby("class").agg(
        answers=("agree", "size"),
        distinct=("response", "nunique"),
        cutkit_ok=("covered_ok", "sum"),
        ifeval_ok=("ifeval_ok", "sum"),
        unfinished=("finished", lambda f: int((~f).sum())),
    )
    lines = [
        "| words split at | answers | distinct texts | unfinished | cutkit ok | IFEval ok | example (limit: "
        "whitespace / `\\w+` words) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in classes.sort_values("answers", ascending=False).iterrows():
        ex = dis[dis["class"] == name].iloc[0]
        lines.append(
            f"| {name} | {r.answers} | {r.distinct} | {r.unfinished} | {r.cutkit_ok} | {r.ifeval_ok} | "
            f"{_cell(ex.response)} ({ex.n}: {ex.words_whitespace} / {ex.words_ifeval}) |"
        )
    return "\n".join(lines)


def _ordinary_disagreements(ordinary: pd.DataFrame) -> str:
    dis = ordinary[~ordinary.agree]
    if dis.empty:
        return "No ordinary response got different verdicts."
    lines = ["| kind | response | cutkit ok | IFEval ok |", "|---|---|---|---|"]
    for r in dis.itertuples():
        lines.append(f"| `{r.kind}` | {_cell(r.response)} | {r.covered_ok} | {r.ifeval_ok} |")
    return "Ordinary responses with different verdicts:\n\n" + "\n".join(lines)


_LANGDETECT_NOTE = """langdetect does not call every short lowercase text English (it is seeded, so
the verdict is reproducible); `english_lowercase` then fails it.
"""


def report(held: pd.DataFrame, synth: pd.DataFrame, n_generated: int) -> str:
    import if_verifiable

    dis = held[~held.agree]
    fewer = dis[dis.words_ifeval < dis.words_whitespace]
    more = dis[dis.words_ifeval > dis.words_whitespace]
    longest = held.loc[(held.words_ifeval - held.words_whitespace).idxmax()]
    unfinished, blank = int((~held.finished).sum()), int(held.blank.sum())
    done = held[held.finished & ~held.blank]
    ordinary, probe = synth[synth.group == "ordinary"], synth[synth.group == "probe"]
    mapping = "\n".join(f"| `{k}` | `{v.instruction_id}` |" for k, v in IFEVAL_INSTRUCTIONS.items())
    unmapped = "\n".join(f"| `{k}` | none: {why} |" for k, why in UNMAPPED.items())
    scored = synth.task.nunique()
    counts = Counter(t.family for t in generate_tasks(N_TASKS, seed=SEED)).values()
    per_family = min(counts) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
    return f"""# IFEval's reference checkers vs cutkit's own

```bash
python benchmarks/ifeval_agreement/ifeval_agreement.py --out benchmarks/ifeval_agreement
```

Code at commit `{_commit()}`. Checkers: if-verifiable {if_verifiable.__version__} (Google's IFEval
`instructions.py`), strict mode. Run on {platform.machine()}, Python {platform.python_version()},
in a few seconds on one core. Every row is in [`agreement.csv`](agreement.csv): one per
(response, mapped constraint), with both verdicts (`cutkit_ok` is cutkit's full verdict,
`covered_ok` the part the IFEval instruction covers), the limit and both word counts of the held-out rows, the class of a
held-out disagreement, and the text of the synthetic responses. The held-out text is in
[`../onpolicy/answers.csv`](../onpolicy/answers.csv) (key: arm, seed, task).

Each cutkit constraint that has an IFEval instruction is scored by both checkers on the same text
(`cutkit.online.ifeval`; its docstring gives the mapping and what each instruction covers).
*cutkit ok* is cutkit's verdict on the part the IFEval instruction covers. For every kind but
`json_keys` that is cutkit's full verdict; `json_format` does not check `json_keys`' keys.
*Agreement* is the share of (response, constraint) pairs with equal verdicts.

| cutkit kind | IFEval instruction |
|---|---|
{mapping}
{unmapped}

## Held-out answers of the on-policy experiment (word limits)

The set: {len(held)} answers, every arm and seed in `answers.csv`. All are `max_words` tasks
("Describe X in at most n words.", n = 8, 10 or 12), mapped to `length_constraints:number_words`
with relation "less than" n + 1. **Agreement: {_pct(held.agree.mean())}** (target 99%; {int(held.agree.sum())}
of {len(held)}; {len(dis)} disagreements). {unfinished} answers were cut off at the token limit
(unfinished) and {blank} are blank. The checkers are compared on the text as it is. On the
{len(done)} finished, non-blank answers, agreement is {_pct(done.agree.mean())}.

{_table(held, ["arm"])}

### Disagreements

IFEval counts `\\w+` tokens: it splits a word at every character that is not a letter, digit or
underscore. cutkit counts whitespace-separated words.

- In {len(more)} disagreements the answer is within the limit by cutkit's count but not by IFEval's.
  One whitespace word counts as several `\\w+` tokens.
- In {len(fewer)} disagreements the answer is over the limit by cutkit's count and within it by IFEval's. A
  word with no letter or digit, such as a lone dash, counts for cutkit and not for IFEval.

Each class below names what splits the words of its answers. "Other punctuation" is any other
character that is neither a word character nor whitespace, between two word characters.

{_classes(dis)}

The largest gap between the two counts is {_cell(longest.response, 60)}
(arm `{longest.arm}`): {longest.words_whitespace} whitespace word(s), {longest.words_ifeval}
`\\w+` tokens. A hyphen chain like this one passes cutkit's word limit however long it gets.

## Synthetic responses across every kind

The tasks: `generate_tasks({N_TASKS}, seed={SEED})`, {per_family} per family, some with a second
constraint. {scored} of them have a mapped constraint; the other {n_generated - scored} are arithmetic tasks and
numbered-list tasks without a second lowercase constraint. Each task gets fixed responses built
from its topic words:

- *ordinary* responses: one that satisfies every constraint, plus one per mapped constraint that
  plainly breaks it. Each is scored on every mapped constraint of its task.
- *probes*: edge cases of one kind, scored on that kind only.

### Ordinary responses, per kind: agreement {_pct(ordinary.agree.mean())} (n = {len(ordinary)})

{_table(ordinary, ["kind"], full=True)}

{_ordinary_disagreements(ordinary)}

{_LANGDETECT_NOTE if (~ordinary.agree & (ordinary.kind == "lowercase")).any() else ""}
### Probes

{_table(probe, ["kind", "variant"], full=True, why=True)}
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    held, synth = heldout_rows(), synthetic_rows()
    args.out.mkdir(parents=True, exist_ok=True)
    held_out = held.assign(source="heldout", group="heldout", variant="", response="")
    blank = dict.fromkeys(["arm", "seed", "n", "words_whitespace", "words_ifeval", "class"], "")
    synth_out = synth.assign(source="synthetic", **blank)
    columns = ["source", "arm", "seed", "task", "kind", "group", "variant", "n"]
    columns += ["words_whitespace", "words_ifeval", "cutkit_ok", "covered_ok", "ifeval_ok"]
    columns += ["agree", "class", "response"]
    both = pd.concat([held_out, synth_out], ignore_index=True)
    both[columns].to_csv(args.out / "agreement.csv", index=False)
    (args.out / "README.md").write_text(report(held, synth, N_TASKS))
    print(
        f"held-out agreement {held.agree.mean():.4f} (n={len(held)}); synthetic ordinary "
        f"{synth[synth.group == 'ordinary'].agree.mean():.4f}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
