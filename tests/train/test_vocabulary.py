"""The choices of the settings are declared once, in cutkit.train.vocabulary, and every other list
of them (the config, the loss, the comparison, the online loop, the command-line help) is that
declaration or derived from it; the old names still import from their old modules."""

from __future__ import annotations

import pytest

from cutkit.train import vocabulary

CHOICES = ("OBJECTIVES", "TRL_OBJECTIVES", "ONLINE_OBJECTIVES", "LEARNS_FROM_NEGATIVES")
CHOICES += ("DETECTORS", "UNFLAGGED", "NORMALIZATIONS")


@pytest.mark.parametrize("name", CHOICES)
def test_each_vocabulary_is_a_tuple_of_distinct_words_that_its_docstring_explains(name):
    import ast
    import inspect

    values = getattr(vocabulary, name)
    assert isinstance(values, tuple) and len(set(values)) == len(values) > 0
    tree = ast.parse(inspect.getsource(vocabulary))
    body = tree.body
    (index,) = [
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.Assign) and node.targets[0].id == name  # type: ignore[union-attr]
    ]
    docstring = body[index + 1].value.value  # the string literal after the assignment
    assert all(f"``{value}``" in docstring for value in values), (name, docstring)


def test_the_objective_subsets_are_drawn_from_the_declared_objectives():
    every = (*vocabulary.OBJECTIVES, *vocabulary.TRL_OBJECTIVES)
    assert not set(vocabulary.OBJECTIVES) & set(vocabulary.TRL_OBJECTIVES)
    assert set(vocabulary.ONLINE_OBJECTIVES) <= set(every)
    assert set(vocabulary.LEARNS_FROM_NEGATIVES) <= set(every)


def test_the_old_names_are_the_declaration():
    from cutkit import OBJECTIVES
    from cutkit.eval import comparison
    from cutkit.online import config as online_config
    from cutkit.train import config, entry, losses, objectives, settings

    assert OBJECTIVES is objectives.OBJECTIVES is config.OBJECTIVES is vocabulary.OBJECTIVES
    assert config.DETECTORS is settings.DETECTORS is vocabulary.DETECTORS
    assert losses.UNFLAGGED is config.UNFLAGGED is vocabulary.UNFLAGGED
    assert losses.NORMALIZATIONS is config.NORMALIZATIONS is vocabulary.NORMALIZATIONS
    assert online_config.ONLINE_OBJECTIVES is vocabulary.ONLINE_OBJECTIVES
    assert comparison.TRL_OBJECTIVES is vocabulary.TRL_OBJECTIVES
    assert entry.LEARNS_FROM_NEGATIVES is vocabulary.LEARNS_FROM_NEGATIVES
    assert (*vocabulary.OBJECTIVES, *vocabulary.TRL_OBJECTIVES) == comparison.COMPARABLE
    for objective in vocabulary.OBJECTIVES:  # each one fixes its switches (a KeyError if not)
        assert isinstance(objectives.objective_switches(objective, {}), dict)


def test_the_compare_help_lists_every_comparable_objective():
    from cutkit.cli.compare import CompareScriptArguments
    from cutkit.eval.comparison import COMPARABLE

    (declared,) = [
        f for f in CompareScriptArguments.__dataclass_fields__.values() if f.name == "objectives"
    ]
    listed = declared.metadata["help"].split(":", 1)[1].split(";")[0]
    assert tuple(word.strip() for word in listed.split(",")) == COMPARABLE


def test_training_and_the_levers_refuse_a_word_outside_the_vocabulary():
    from cutkit.train.config import CUTConfig
    from cutkit.train.settings import CUTLevers

    with pytest.raises(ValueError, match=r"detector must be one of \('model', 'spans'\)"):
        CUTLevers(detector="gold")
    with pytest.raises(ValueError, match=r"unflagged one of \('mle', 'ignore'\)"):
        CUTLevers(unflagged="drop")
    with pytest.raises(ValueError, match=r"normalization must be one of \('official'"):
        CUTConfig(output_dir="unused", normalization="batch")
