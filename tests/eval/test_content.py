"""The content check (cutkit.eval.content): each rule on answers the on-policy arms produced."""

import pytest

from cutkit.eval.content import CONTENT_PROBLEMS, content_problem, echo, is_sound, same_stem

VOLCANO = ("volcanoes", ("lava", "magma", "eruption"))


@pytest.mark.parametrize(
    ("text", "finished", "expected"),
    [
        ("   ", True, "empty"),
        ("Volcanoes erupt lava and ash and", False, "truncated"),
        ("Volcanoes are majestic, majestic, majestic.", True, "repetitive"),
        ("Small.", True, "too_short"),
        ("Volcanoes erupt.", True, "too_short"),
        ("1. Volcano\n2. No\n3. No\n4. No", True, "fragment_list"),
        ("- Lava\n- Magma\n- Ash", True, "fragment_list"),
        ("Volcanoes are majestic and majestic.", True, "echo"),
        ("Volcanoes are volcanoes.", True, "tautology"),
        ("These volcanoes are the volcanoes.", True, "tautology"),
        ("Bananas are yellow and sweet.", True, "off_topic"),
        ("It is a marvel of nature.", True, "off_topic"),
        ("Volcanoes are the world's most iconic natural wonders.", True, None),
        ("Molten lava pours out of the mountain.", True, None),  # an associated word
        ("Volcanic mountains shape whole islands.", True, None),  # the topic by its stem
        ("1. Volcanoes build islands.\n2. Their ash feeds soils.", True, None),  # real items
    ],
)
def test_each_rule_on_its_own_example(text, finished, expected):
    assert content_problem(text, *VOLCANO, finished=finished) == expected
    assert is_sound(text, *VOLCANO, finished=finished) is (expected is None)
    assert expected is None or expected in CONTENT_PROBLEMS


def test_rules_apply_in_the_documented_order():
    # too short wins over off topic, repetition over everything but empty and truncated
    assert content_problem("Bananas.", *VOLCANO) == "too_short"
    assert content_problem("bananas bananas bananas", *VOLCANO) == "repetitive"
    assert content_problem("", *VOLCANO, finished=False) == "empty"


def test_a_list_passes_where_a_list_was_asked_for():
    text = "1. Lava\n2. Magma\n3. Ash"
    assert content_problem(text, *VOLCANO) == "fragment_list"
    assert content_problem(text, *VOLCANO, allow_list=True) is None


def test_without_a_topic_only_degeneration_counts():
    assert content_problem("42", None) is None
    assert content_problem("", None) == "empty"
    assert content_problem("7 7 7", None, finished=False) == "truncated"


def test_topic_words_are_not_echoes_and_stems_match():
    # the topic said twice is no echo ("The water cycle ... the Earth's water cycle")
    assert content_problem("Volcanoes are volcanoes that erupt lava.", *VOLCANO) is None
    assert echo("Sharks are majestic and majestic.", "sharks") == "majestic"
    assert echo("Sharks hunt fish and seals.", "sharks") is None
    assert same_stem("volcanic", "volcanoes") and same_stem("bees", "bee")
    assert not same_stem("tea", "tigers") and not same_stem("an", "ant")
