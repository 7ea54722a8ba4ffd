"""The rule judge's wording: per constraint kind, alternative sentences stating a violation.

Each ``critique_<kind>(violation, response)`` returns sentences saying precisely what is wrong
(one is picked at random); every quote of the response's offending text is in full.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cutkit.online.kinds.violation import Violation
from cutkit.online.text import plural, quote, quote_list


def _distinct(texts) -> list[str]:
    return list(dict.fromkeys(texts))


def _comma_contexts(response: str, commas: Sequence[tuple[int, int]]) -> list[str]:
    """Each comma of ``response`` with the words around it: the whitespace-separated word that
    holds the comma through the word after it, overlapping stretches merged ("red, green, blue")."""
    words = [m.span() for m in re.finditer(r"\S+", response)]
    stretches: list[list[int]] = []
    for start, _ in commas:
        k = next(i for i, (s, e) in enumerate(words) if s <= start < e)
        first, last = k, min(k + 1, len(words) - 1)
        if stretches and first <= stretches[-1][1]:
            stretches[-1][1] = max(stretches[-1][1], last)
        else:
            stretches.append([first, last])
    return [response[words[a][0] : words[b][1]] for a, b in stretches]


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _spanned(v: Violation, response: str) -> str:
    """The response text from the first span of ``v`` to the end of its last."""
    return response[v.spans[0][0] : v.spans[-1][1]]


def critique_lowercase(v: Violation, response: str) -> list[str]:
    words = quote_list(v.facts["words"])
    verb = "contains" if len(v.facts["words"]) == 1 else "contain"
    return [
        f"It is not all lowercase: {words} {verb} capital letters.",
        f"The instruction asks for lowercase only, but the response capitalises {words}.",
        f"Capital letters appear in {words}, which breaks the all-lowercase rule.",
    ]


def critique_max_words(v: Violation, response: str) -> list[str]:
    n, count, excess = v.facts["n"], v.facts["count"], quote(v.facts["excess"])
    return [
        f"It is too long: {count} words where at most {n} are allowed. Everything from "
        f"{excess} on is over the limit.",
        f"The response has {count} words, but the limit is {n}; the part starting {excess} "
        "goes past it.",
        f"The word limit is {n} and the response uses {count}: it should have stopped "
        f"before {excess}.",
    ]


def critique_include_word(v: Violation, response: str) -> list[str]:
    word = v.facts["word"]
    return [
        f'The required word "{word}" never appears in the response.',
        f'It does not use the word "{word}", which the instruction requires.',
        f'The response is missing the word "{word}" that it was told to include.',
    ]


def critique_exclude_word(v: Violation, response: str) -> list[str]:
    word, times = v.facts["word"], _times(v.facts["count"])
    written = quote_list(_distinct(response[s:e] for s, e in v.spans) or [v.facts["as_written"]])
    return [
        f'It uses the forbidden word "{word}" ({times}).',
        f'The instruction forbids "{word}", but the response writes {written} {times}.',
        f'"{word}" must not appear, yet it occurs {times} in the response.',
    ]


def critique_no_commas(v: Violation, response: str) -> list[str]:
    count = v.facts["count"]
    context = quote_list(_comma_contexts(response, v.spans) or [v.facts["context"]])
    commas = "a comma" if count == 1 else f"{count} commas"
    return [
        f"It uses {commas} although commas are not allowed: {context}.",
        f"The instruction says no commas, but the response has {commas}, in {context}.",
        f"Commas are forbidden, yet the response contains {commas}: see {context}.",
    ]


def critique_end_with(v: Violation, response: str) -> list[str]:
    phrase = v.facts["phrase"]
    if not v.facts["ending"]:
        return [f'The response is empty, so it does not end with "{phrase}".']
    ending = quote(v.facts["ending"])
    return [
        f'It does not end with the exact phrase "{phrase}"; it ends with {ending} instead.',
        f'The last words should be "{phrase}", but the response finishes with {ending}.',
        f'The required closing phrase "{phrase}" is missing: the final sentence is {ending}.',
    ]


def critique_numbered_list(v: Violation, response: str) -> list[str]:
    f = v.facts
    n, count, problem = f["n"], f["count"], f["problem"]
    if problem == "no_list":
        return [
            f"There is no numbered list; the instruction asks for exactly {n} numbered items.",
            f'The response is not a numbered list of {n} items: no line starts with "1." or '
            "similar.",
            f"It does not give the numbered list of {n} items that was asked for.",
        ]
    if problem == "too_many":  # every extra item, from the first to the end of the last
        extra = quote(_spanned(v, response) if v.spans else f["item"])
        many = "item is" if count - n == 1 else "items are"
        return [
            f"The list has {count} items, but exactly {n} were asked for; the extra {many} "
            f"{extra}.",
            f"Too many items: {count} instead of {n}. The list should stop before {extra}.",
            f"It lists {count} items where the instruction wants exactly {n}, so {extra} should "
            "not be there.",
        ]
    if problem == "too_few":
        return [
            f"The list has only {plural(count, 'item')}; the instruction asks for exactly {n}.",
            f"Too few items: {count} instead of {n}.",
            f"It stops after {plural(count, 'item')}, but exactly {n} were requested.",
        ]
    item = quote(f["item"])
    return [
        f"The numbering is wrong: item {f['expected']} is numbered {f['found']} ({item}).",
        f"Item {f['expected']} of the list carries the number {f['found']} instead ({item}).",
    ]


def _key_phrase(keys: Sequence[str]) -> tuple[str, str]:
    """``keys`` quoted, and "key" or "keys" to go with them."""
    return quote_list(keys), "key" if len(keys) == 1 else "keys"


def critique_json_keys(v: Violation, response: str) -> list[str]:
    f = v.facts
    keys, problem = quote_list(f["keys"]), f["problem"]
    if problem == "no_object":
        return [
            f"The response contains no JSON object; it should be one with the keys {keys}.",
            f"There is no JSON in the response, although a JSON object with keys {keys} was "
            "requested.",
        ]
    if problem == "text_before":
        text = quote(f["text"])
        return [
            f"There is text before the JSON object ({text}), but only the JSON was asked for.",
            f"The JSON should stand alone, yet the response opens with {text}.",
        ]
    if problem == "text_after":
        text = quote(f["text"])
        return [
            f"Text follows the JSON object ({text}); only the JSON was asked for.",
            f"The response adds {text} after the JSON, which the instruction does not allow.",
        ]
    if problem == "invalid":
        near = quote(_spanned(v, response) if v.spans else f["near"])
        return [
            f"The JSON is not valid ({f['message']}) near {near}.",
            f"This is not valid JSON: {f['message'].lower()} at {near}.",
        ]
    if problem == "missing":
        missing, the_keys = _key_phrase(f["missing"])
        verb = "is" if len(f["missing"]) == 1 else "are"
        return [
            f"The JSON object lacks the {the_keys} {missing}.",
            f"The {the_keys} {missing} {verb} missing from the JSON object.",
        ]
    extra, the_keys = _key_phrase(f["extra"])
    return [
        f"The JSON object has the {the_keys} {extra}, which was not asked for; the keys should "
        f"be exactly {keys}.",
        f"Only the keys {keys} are allowed, but the object also has {extra}.",
    ]


def critique_arithmetic(v: Violation, response: str) -> list[str]:
    expression, answer = v.facts["expression"], v.facts["answer"]
    if v.facts["problem"] == "no_number":
        return [
            f"The response gives no number at all; {expression} is {answer}.",
            f"It does not answer with a number. The answer to {expression} is {answer}.",
        ]
    if v.facts["problem"] == "wrong":
        given = v.facts["given"]
        return [
            f"The answer is wrong: {expression} is {answer}, not {given}.",
            f"{given} is incorrect; {expression} = {answer}.",
            f"It says {given}, but {expression} equals {answer}.",
        ]
    extra = quote(v.facts["extra"])
    return [
        f"The instruction asks for the number only, but the response adds {extra}.",
        f"It should reply with just the number, without {extra}.",
    ]
