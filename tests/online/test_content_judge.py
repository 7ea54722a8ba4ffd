"""Honest satisfaction and the rule judge's content critiques (RuleJudge(content_check=True))."""

from cutkit.online.checkers import satisfies, satisfies_honestly, task_content_problem
from cutkit.online.generator import generate_tasks, topic_words, word_limit_tasks
from cutkit.online.judges.rule import RuleJudge

TASK = word_limit_tasks(["volcanoes"], (10,))[0]  # "Explain volcanoes in at most 10 words."


def test_honest_satisfaction_needs_the_constraint_and_a_sound_answer():
    assert satisfies(TASK, "Small.") and not satisfies_honestly(TASK, "Small.")
    assert satisfies_honestly(TASK, "Molten lava pours out of the mountain.")
    assert not satisfies_honestly(TASK, "Molten lava pours out of the mountain.", finished=False)
    too_long = "Volcanoes are mountains that pour molten lava and ash over the land around them."
    assert not satisfies(TASK, too_long) and not satisfies_honestly(TASK, too_long)


def test_tasks_bring_their_topic_words_and_lists_are_allowed_where_asked():
    assert topic_words("volcanoes") == ("lava", "magma", "eruption")
    assert topic_words(None) == () and topic_words("no such topic") == ()
    listing = next(t for t in generate_tasks(40, seed=1) if t.family == "numbered_list")
    words = topic_words(listing.topic)
    items = "\n".join(f"{i}. {w}" for i, w in enumerate(words, 1))
    assert task_content_problem(listing, items) is None
    assert task_content_problem(TASK, "1. Lava\n2. Magma\n3. Ash") == "fragment_list"


def test_the_content_judge_criticises_what_the_check_rejects_and_quotes_it():
    judge = RuleJudge(content_check=True)
    echo = "Volcanoes are majestic and majestic."
    verdict = judge.judge_one(TASK, echo)
    assert not verdict.is_positive and '"majestic"' in verdict.text
    assert [echo[a:b] for a, b in verdict.error_spans] == ["majestic"]
    assert echo.index("majestic", echo.index("majestic") + 1) == verdict.error_spans[0][0]
    assert verdict.meta["violations"] == ["echo"]
    short = judge.judge_one(TASK, "Small.")
    assert not short.is_positive and '"Small."' in short.text and "volcanoes" in short.text
    assert short.error_spans == [(0, len("Small."))]
    # the limit and the content at once: both are said, both spans kept
    long_echo = "Volcanoes are majestic and majestic, and they pour lava over all the land there."
    both = judge.judge_one(TASK, long_echo)
    assert both.meta["violations"] == ["max_words", "echo"] and len(both.error_spans) == 2
    assert judge.judge_one(TASK, "Molten lava pours out of the mountain.").is_positive


def test_without_content_check_the_judge_checks_constraints_alone():
    assert RuleJudge().judge_one(TASK, "Small.").is_positive
    plain, content = RuleJudge(), RuleJudge(content_check=True)
    too_long = "Volcanoes are mountains that pour molten lava and ash over the land around them."
    assert plain.judge_one(TASK, too_long) == content.judge_one(TASK, too_long)
