"""@reference: torch references memoised per process, handed out as copies, and grades that do not depend on it."""
import itertools
from collections import OrderedDict, defaultdict, namedtuple
from pathlib import Path

import pytest
import torch
from torch import nn

from kit.grader import reference as cache
from kit.grader.reference import reference
from tests.conftest import ROOT, grade

NAMES = itertools.count()


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.set_cache_enabled(None)
    cache.clear_cache()
    yield
    cache.set_cache_enabled(None)
    cache.clear_cache()


def counted(fn, name: str | None = None):
    """`fn` under @reference, with the number of times its body ran in `.runs`. Each gets a
    qualified name of its own (what names its results in the disk store) unless `name` is given."""
    runs = []

    def wrapped(*args, **kwargs):
        runs.append(args)
        return fn(*args, **kwargs)

    wrapped.__qualname__ = name or f"counted_{next(NAMES)}"
    wrapped = reference(wrapped)
    wrapped.runs = runs
    return wrapped


# --- the decorator --------------------------------------------------------------------------------


def test_memoises_per_arguments():
    square = counted(lambda n, scale=1.0: torch.arange(n, dtype=torch.float64) ** 2 * scale)
    assert torch.equal(square(3), torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64))
    assert torch.equal(square(3), square(3))
    assert len(square.runs) == 1
    square(4)
    square(3, scale=2.0)
    square(3, scale=2.0)
    assert len(square.runs) == 3
    assert cache.cache_stats() == {"hits": 3, "misses": 3, "loaded": 0}


def test_equal_arguments_of_other_types_are_other_calls():
    kind = counted(lambda x: type(x).__name__)
    assert [kind(1), kind(1.0), kind(True)] == ["int", "float", "bool"]
    assert len(kind.runs) == 3


def test_every_call_gets_a_copy():
    Pair = namedtuple("Pair", "a b")
    data = counted(lambda: {"t": torch.ones(2), "list": [torch.zeros(1), 3], "pair": Pair(torch.ones(1), "x"),
                            "ordered": OrderedDict(w=torch.ones(1))})
    first = data()
    first["t"].add_(5)
    first["list"][0].fill_(7)
    first["list"].append("junk")
    first["pair"].a.mul_(0)
    first["ordered"]["w"].fill_(9)
    first["new"] = 1
    second = data()
    assert torch.equal(second["t"], torch.ones(2))
    assert torch.equal(second["list"][0], torch.zeros(1)) and len(second["list"]) == 2
    assert torch.equal(second["pair"].a, torch.ones(1)) and isinstance(second["pair"], Pair)
    assert type(second["ordered"]) is OrderedDict and torch.equal(second["ordered"]["w"], torch.ones(1))
    assert "new" not in second
    assert second["t"] is not data()["t"]
    assert len(data.runs) == 1


def test_results_are_detached():
    leaf = counted(lambda: torch.ones(2, requires_grad=True) * 2)
    assert not leaf().requires_grad


@pytest.mark.parametrize("switch", ["function", "environment"])
def test_switch_turns_memoising_off(monkeypatch, switch):
    value = counted(lambda n: torch.full((2,), float(n)))
    if switch == "function":
        cache.set_cache_enabled(False)
    else:
        monkeypatch.setenv(cache.ENV, "0")
    assert not cache.cache_enabled()
    first = value(1)
    first.fill_(0)
    assert torch.equal(value(1), torch.ones(2))
    assert len(value.runs) == 2 and cache.cache_stats() == {"hits": 0, "misses": 0, "loaded": 0}
    cache.set_cache_enabled(True)  # overrides the environment
    value(1)
    value(1)
    assert len(value.runs) == 3


def test_environment_is_read_at_call_time(monkeypatch):
    value = counted(lambda: 1)
    value()
    monkeypatch.setenv(cache.ENV, "off")
    value()
    monkeypatch.setenv(cache.ENV, "1")
    value()
    assert len(value.runs) == 2


def test_random_state_depends_on_arguments_only_and_is_restored():
    draw = counted(lambda n: torch.rand(n))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    for _ in range(2):  # a miss, then a hit: the caller's random numbers are the same either way
        torch.manual_seed(123)
        got = draw(4)
        assert torch.equal(torch.rand(3), expected_next)
    torch.manual_seed(0)
    assert torch.equal(got, torch.rand(4))  # the body ran with the generator seeded to 0
    cache.set_cache_enabled(False)
    torch.manual_seed(999)
    assert torch.equal(draw(4), got)


@pytest.mark.parametrize("arg", [torch.ones(1), [1, 2], {"a": 1}, (1, [2]), nn.Linear(1, 1), lambda: 0])
def test_arguments_must_be_hashable_values(arg):
    fn = counted(lambda x: 0)
    with pytest.raises(TypeError, match="arguments must be hashable values"):
        fn(arg)
    with pytest.raises(TypeError, match="arguments must be hashable values"):
        fn(x=arg)


def test_result_must_be_data():
    module = counted(lambda: nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must return data"):
        module()


# --- the disk store of kit check -------------------------------------------------------------------


def test_store_serves_the_next_run(tmp_path):
    square = counted(lambda n: torch.arange(n, dtype=torch.float64) ** 2)
    listed = counted(lambda: {"a": [torch.ones(2), (1, "x", None)], "dtype": torch.float16,
                              "state": OrderedDict(w=nn.Parameter(torch.ones(1)))})
    path = tmp_path / "hw0-0.pt"
    with cache.persisted(path):
        first, data = square(3), listed()
    assert path.is_file()
    cache.clear_cache()  # as a new process would start
    with cache.persisted(path):
        assert torch.equal(square(3), first)
        again = listed()
        square(4)  # not stored yet: computed, then stored
    assert len(square.runs) == 2 and len(listed.runs) == 1
    assert cache.cache_stats() == {"hits": 0, "misses": 1, "loaded": 2}
    assert torch.equal(again["a"][0], data["a"][0]) and again["a"][1] == (1, "x", None)
    assert again["dtype"] is torch.float16 and type(again["state"]) is OrderedDict
    cache.clear_cache()
    with cache.persisted(path):
        square(4)
    assert len(square.runs) == 2


def test_store_keeps_only_what_loads_back_as_it_was(tmp_path):
    Pair = namedtuple("Pair", "a b")
    pair = counted(lambda: Pair(torch.ones(1), 2))
    lists = counted(lambda: defaultdict(list, a=[1]))
    twins = [counted(lambda: torch.zeros(1), name="twin") for _ in range(2)]  # one name, two functions
    path = tmp_path / "hw0-0.pt"
    for _ in range(2):
        cache.clear_cache()
        with cache.persisted(path):
            assert isinstance(pair(), Pair) and isinstance(lists(), defaultdict)
            for twin in twins:
                twin()
    assert len(pair.runs) == len(lists.runs) == 2 and [len(t.runs) for t in twins] == [2, 2]
    assert not path.exists()  # nothing was worth writing


def test_store_that_is_not_ours_runs_nothing_and_is_replaced(tmp_path):
    path = tmp_path / "hw0-0.pt"
    torch.save({"x": Trap(str(tmp_path / "pwned"))}, path)
    value = counted(lambda: torch.ones(1))
    with cache.persisted(path):
        value()
    assert not (tmp_path / "pwned").exists() and len(value.runs) == 1
    cache.clear_cache()
    with cache.persisted(path):
        value()
    assert len(value.runs) == 1


class Trap:
    """Unpickling this would create a file: weights_only loading must refuse it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_store_off_with_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, "0")
    value = counted(lambda: torch.ones(1))
    with cache.persisted(tmp_path / "hw0-0.pt"):
        value()
    assert not list(tmp_path.iterdir())


def no_home():
    raise RuntimeError("Could not determine home directory.")  # what Path.home() says without HOME or passwd


def test_no_home_no_store(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert cache.store_path(tmp_path) is None
    value = counted(lambda: torch.ones(1))
    for _ in range(2):
        cache.clear_cache()
        with cache.persisted(None):
            value()
    assert len(value.runs) == 2


def test_store_path_follows_the_suite_and_replaces_its_old_store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    suite = tmp_path / "hw9"
    suite.mkdir()
    (suite / "test_a.py").write_text("x = 1\n")
    first = cache.store_path(suite)
    assert first.parent == tmp_path / "cache" / "kit" / "references" and first.name.startswith("hw9-")
    (suite / "__pycache__").mkdir()
    (suite / "__pycache__" / "test_a.pyc").write_bytes(b"\0")
    assert cache.store_path(suite) == first
    (suite / "test_a.py").write_text("x = 2\n")
    second = cache.store_path(suite)
    assert second != first

    value = counted(lambda: torch.ones(1))
    other = first.with_name("hw9-extra-0123456789abcdef.pt")  # another assignment's store
    for path in (other, first, second):
        cache.clear_cache()
        with cache.persisted(path):
            value()
    assert sorted(first.parent.iterdir()) == sorted([other, second])


# --- grades are the same with and without it -------------------------------------------------------

CASES = {
    "hw1": ["transposed_weight", "bias_grad_dropped"],
    "hw2": ["biased_running_var", "momentum_none_ignored"],
    "hw3": ["alpha_binary", "ignore_index_ignored"],
    "hw4": ["off_by_one", "amsgrad_corrected_max"],
    "hw5": ["scaled_by_embed_dim", "inverted_mask"],
    "hw6": ["stride_on_conv2"],
}


def verdicts(report) -> tuple:
    return report.score, {c.id: (c.status, c.points, c.message) for c in report.checks}


@pytest.mark.parametrize("name", sorted(CASES))
def test_grades_identical_with_and_without_cache(course, name, monkeypatch):
    """The solution and wrong submissions, graded in one process: cache filling, served from the cache, and off."""
    spec = course.assignment(name)
    folders = [course.solutions / name] + [ROOT / "tests" / "submissions" / name / case for case in CASES[name]]

    def grade_all() -> list:
        return [verdicts(grade(spec, folder)) for folder in folders]

    filled = grade_all()
    misses = cache.cache_stats()["misses"]
    assert misses > 0
    served = grade_all()
    assert cache.cache_stats()["misses"] == misses, "the second run recomputed references"
    assert cache.cache_stats()["hits"] > 0
    monkeypatch.setenv(cache.ENV, "0")
    uncached = grade_all()
    assert filled == served == uncached
    assert filled[0][0] > 0 and any(score < filled[0][0] for score, _ in filled[1:])


@pytest.mark.parametrize("name", sorted(CASES))
def test_grades_identical_from_the_disk_store(course, name, tmp_path):
    """Public checks, as `kit check` runs them: storing references, loading them in a new run, and off."""
    spec = course.assignment(name)
    folders = [course.solutions / name] + [ROOT / "tests" / "submissions" / name / case for case in CASES[name]]
    path = cache.store_path(spec.suite_dir)

    def grade_all() -> list:
        return [verdicts(grade(spec, folder, hidden=False)) for folder in folders]

    with cache.persisted(path):
        stored = grade_all()
    cache.clear_cache()
    with cache.persisted(path):
        loaded = grade_all()
    assert cache.cache_stats()["loaded"] > 0
    cache.set_cache_enabled(False)
    uncached = grade_all()
    assert stored == loaded == uncached
