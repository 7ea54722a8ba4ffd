"""One check per constraint kind: ``(params, response) -> violations``, with character spans.

A check returns an empty list when the response satisfies the constraint; otherwise one
:class:`Violation` per distinct fault, whose ``facts`` are what a critique states.
"""

from __future__ import annotations

import json
import re

from cutkit.online.kinds.violation import Violation

_WORD = re.compile(r"\S+")
_ALNUM_WORD = re.compile(r"\w+")
_ITEM = re.compile(r"^[ \t]*(\d+)[.)][ \t]+\S.*$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PLAIN_NUMBER = re.compile(r"^\s*(-?\d+)(?:\.0+)?\.?\s*$")
_FENCE = re.compile(r"^\s*```[a-zA-Z]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def _word_pattern(word: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def _stripped_end(text: str) -> int:
    return len(text.rstrip())


def _whole(response: str) -> list[tuple[int, int]]:
    """The span of all of ``response`` but trailing whitespace (none for a blank response)."""
    return [(0, _stripped_end(response))] if response.strip() else []


def check_lowercase(params: dict, response: str) -> list[Violation]:
    words = [m for m in _ALNUM_WORD.finditer(response) if any(c.isupper() for c in m.group())]
    if not words:
        return []
    shown = list(dict.fromkeys(m.group() for m in words))
    return [
        Violation("lowercase", {"words": shown, "count": len(words)}, [m.span() for m in words])
    ]


def check_max_words(params: dict, response: str) -> list[Violation]:
    n = int(params["n"])
    words = list(_WORD.finditer(response))
    if len(words) <= n:
        return []
    start, end = words[n].start(), _stripped_end(response)
    facts = {"n": n, "count": len(words), "excess": response[start:end]}
    return [Violation("max_words", facts, [(start, end)])]


def check_include_word(params: dict, response: str) -> list[Violation]:
    if _word_pattern(params["word"]).search(response):
        return []
    return [Violation("include_word", {"word": params["word"]})]


def check_exclude_word(params: dict, response: str) -> list[Violation]:
    hits = list(_word_pattern(params["word"]).finditer(response))
    if not hits:
        return []
    facts = {"word": params["word"], "count": len(hits), "as_written": hits[0].group()}
    return [Violation("exclude_word", facts, [m.span() for m in hits])]


def check_no_commas(params: dict, response: str) -> list[Violation]:
    commas = [i for i, c in enumerate(response) if c == ","]
    if not commas:
        return []
    first = commas[0]
    context = response[max(0, first - 25) : first + 20].replace("\n", " ").strip()
    facts = {"count": len(commas), "context": context}
    return [Violation("no_commas", facts, [(i, i + 1) for i in commas])]


def _last_sentence_start(text: str) -> int:
    """Start of the last sentence or line of ``text`` (already right-stripped)."""
    starts = [m.end() for m in re.finditer(r"[.!?]\s+|\n", text[:-1])]
    return starts[-1] if starts else 0


def check_end_with(params: dict, response: str) -> list[Violation]:
    phrase = params["phrase"]
    text = response.rstrip()
    if text.endswith(phrase):
        return []
    if not text:
        return [Violation("end_with", {"phrase": phrase, "ending": ""})]
    start = _last_sentence_start(text)
    while start < len(text) and text[start].isspace():
        start += 1
    return [Violation("end_with", {"phrase": phrase, "ending": text[start:]}, [(start, len(text))])]


def check_numbered_list(params: dict, response: str) -> list[Violation]:
    n = int(params["n"])
    items = list(_ITEM.finditer(response))
    if not items:
        facts = {"n": n, "count": 0, "problem": "no_list"}
        return [Violation("numbered_list", facts, _whole(response))]
    out = []
    for expected, item in enumerate(items, start=1):
        if int(item.group(1)) != expected:
            facts = {
                "n": n,
                "count": len(items),
                "problem": "misnumbered",
                "expected": expected,
                "found": item.group(1),
                "item": item.group().strip(),
            }
            out.append(Violation("numbered_list", facts, [item.span(1)]))
            break
    if len(items) > n:
        extra = items[n:]
        first_extra = extra[0].group().strip()
        facts = {"n": n, "count": len(items), "problem": "too_many", "item": first_extra}
        out.append(Violation("numbered_list", facts, [(m.start(), m.end()) for m in extra]))
    elif len(items) < n:
        out.append(Violation("numbered_list", {"n": n, "count": len(items), "problem": "too_few"}))
    return out


def _json_body(response: str) -> tuple[str, int]:
    """The text to parse as JSON and its offset in ``response`` (inside one code fence, if any)."""
    fence = _FENCE.match(response)
    if fence:
        return fence.group(1), fence.start(1)
    return response, 0


def check_json_keys(params: dict, response: str) -> list[Violation]:
    keys = list(params["keys"])
    body, offset = _json_body(response)
    brace = body.find("{")
    if brace < 0:
        return [Violation("json_keys", {"keys": keys, "problem": "no_object"}, _whole(response))]
    out = []
    lead = body[:brace]
    if lead.strip():
        start = offset + len(lead) - len(lead.lstrip())
        out.append(
            Violation(
                "json_keys",
                {"keys": keys, "problem": "text_before", "text": lead.strip()},
                [(start, offset + len(lead.rstrip()))],
            )
        )
    try:
        obj, end = json.JSONDecoder().raw_decode(body, brace)
    except json.JSONDecodeError as error:
        line_end = body.find("\n", error.pos)
        line_end = len(body.rstrip()) if line_end < 0 else line_end
        start = min(error.pos, max(len(body.rstrip()) - 1, 0))
        end = max(line_end, start + 1)
        facts = {
            "keys": keys,
            "problem": "invalid",
            "message": error.msg,
            "near": body[start:end][:40],
        }
        return [*out, Violation("json_keys", facts, [(offset + start, offset + end)])]
    trail = body[end:]
    if trail.strip():
        start = offset + end + len(trail) - len(trail.lstrip())
        facts = {"keys": keys, "problem": "text_after", "text": trail.strip()}
        out.append(Violation("json_keys", facts, [(start, offset + end + len(trail.rstrip()))]))
    missing = [k for k in keys if k not in obj]
    extra = [k for k in obj if k not in keys]
    if missing:
        out.append(Violation("json_keys", {"keys": keys, "problem": "missing", "missing": missing}))
    if extra:
        spans = []
        for key in extra:
            at = body.find(json.dumps(key), brace, end)
            if at >= 0:
                spans.append((offset + at, offset + at + len(json.dumps(key))))
        facts = {"keys": keys, "problem": "extra", "extra": extra}
        out.append(Violation("json_keys", facts, spans))
    return out


def check_arithmetic(params: dict, response: str) -> list[Violation]:
    answer, expression = int(params["answer"]), params["expression"]
    plain = _PLAIN_NUMBER.match(response)
    if plain and int(plain.group(1)) == answer:
        return []
    facts = {"expression": expression, "answer": answer}
    numbers = list(_NUMBER.finditer(response))
    if not numbers:
        return [Violation("arithmetic", {**facts, "problem": "no_number"}, _whole(response))]
    right = [m for m in numbers if float(m.group()) == answer]
    out = []
    if not right:
        given = numbers[-1]
        out.append(
            Violation(
                "arithmetic", {**facts, "problem": "wrong", "given": given.group()}, [given.span()]
            )
        )
    if not plain:
        keep = (right or numbers)[-1]
        spans = []
        start = len(response) - len(response.lstrip())
        if keep.start() > start:
            spans.append((start, keep.start()))
        end = _stripped_end(response)
        tail = response[keep.end() : end]
        if tail and tail not in (".",):
            spans.append((keep.end(), end))
        extra = " ".join(response[s:e].strip() for s, e in spans)
        out.append(
            Violation("arithmetic", {**facts, "problem": "not_plain", "extra": extra}, spans)
        )
    return out
