"""The front page: short, and its Python examples run as written."""

import importlib.util
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_front_page_fits_on_a_screen_or_two():
    assert len(README.read_text().splitlines()) <= 200


def test_the_python_examples_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    blocks = python_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        needs = set(re.findall(r"^\s*(?:import|from) (\w+)", block, flags=re.M))
        needs |= {"onnxruntime"} if "onnxruntime." in block else set()
        if "to_onnx" in block:
            needs |= {"onnx"}
        missing = [name for name in needs if importlib.util.find_spec(name) is None]
        if missing:
            continue  # an extra's example, run where the extra is installed
        if "onnxruntime." in block:
            exec("import onnxruntime", namespace)
        exec(compile(block, str(README), "exec"), namespace)
    if "model" in namespace:
        assert namespace["model"].score(namespace["X"], namespace["Y"]) > 0.85


def test_the_quick_start_is_the_two_commands_ci_runs():
    text = README.read_text()
    block = text.split("<!-- quickstart -->", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    assert lines == ['pip install ".[cli]" && fastbackprop train',
                     'pip install ".[test]" && python -m pytest']


def test_every_docs_link_points_at_a_file():
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (README.parent / target).exists(), target
