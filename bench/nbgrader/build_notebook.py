"""Build bench/nbgrader/hw2.ipynb: hw2 (MyBatchNorm2d) as an nbgrader *source* notebook.

The notebook is the nbgrader side of the kit-vs-nbgrader benchmark (issue 7). It holds
  * one student cell (nbgrader solution cell ``my_batchnorm``) whose body is
    ``variants/correct/my_batchnorm.py`` with its ``### BEGIN/END SOLUTION`` markers,
    so ``nbgrader generate_assignment`` turns it into a stub;
  * one read-only helper cell (reference runs with ``nn.BatchNorm2d`` in float64, a
    forbidden-call guard);
  * eight autograded test cells with points, mostly ``### BEGIN HIDDEN TESTS`` blocks,
    doing the comparisons kit's hw2 suite does: 3 training steps (outputs, input/weight/bias
    grads), running_mean/running_var/num_batches_tracked, eval with running stats,
    momentum=None, affine=False, track_running_stats=False, state_dict.

Run ``/work/venv/bin/python bench/nbgrader/build_notebook.py`` after editing this file or the
correct variant; ``hw2.ipynb`` is committed so that it can be read without running this.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "hw2.ipynb"
SOLUTION = HERE / "variants" / "correct" / "my_batchnorm.py"
STUDENT_CELL_ID = "my_batchnorm"

INTRO = """\
# hw2 — MyBatchNorm2d

Implement `MyBatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True)`
in the cell below, behaving exactly like `torch.nn.BatchNorm2d` on `(N, C, H, W)` inputs:

* parameters `weight` (ones) and `bias` (zeros), or `None` when `affine=False`;
* buffers `running_mean` (zeros), `running_var` (ones), `num_batches_tracked` (int64 0), or `None`
  when `track_running_stats=False`;
* training mode normalises with the batch mean and the *biased* batch variance, and updates the
  running statistics with the *unbiased* variance; `momentum=None` means a cumulative average;
* eval mode normalises with the running statistics (batch statistics if they are not tracked).

Do not call `F.batch_norm`, `torch.batch_norm` or `nn.BatchNorm2d` (however spelled): that scores zero.
"""

HELPERS = '''\
# Test helpers (read-only): compare MyBatchNorm2d with torch.nn.BatchNorm2d in float64.
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

_FORBIDDEN = {"batch_norm", "native_batch_norm", "_native_batch_norm_legit",
              "_native_batch_norm_legit_no_training", "_batch_norm_impl_index",
              "cudnn_batch_norm", "miopen_batch_norm", "_batch_norm_with_update",
              "_batch_norm_no_update"}


class _NoShortcut(TorchFunctionMode):
    """Fail on any batch-norm library call made while student code runs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "").split(".")[0]
        if name in _FORBIDDEN:
            raise AssertionError(f"forbidden call: {name} (implement batch norm yourself)")
        return func(*args, **(kwargs or {}))


def _student(fn, *args):
    """Run student code under the forbidden-call guard."""
    with _NoShortcut():
        return fn(*args)


_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _make(seed, **kwargs):
    """A torch reference and a MyBatchNorm2d (3 channels, float64) with the same weight and bias.

    Only the parameters are loaded (strict=False): the buffers start from their documented
    initial values and are graded by their own cells (test_state_dict checks registration).
    """
    torch.manual_seed(seed)
    ref = nn.BatchNorm2d(3, **kwargs).double()
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-0.5, 0.5)
    mine = _student(lambda: MyBatchNorm2d(3, **kwargs))
    for m in mine.modules():
        assert not isinstance(m, nn.modules.batchnorm._BatchNorm), \\
            f"forbidden module: {type(m).__name__} (implement batch norm yourself)"
    mine = mine.double()
    if ref.affine:
        mine.load_state_dict({"weight": ref.weight.detach(), "bias": ref.bias.detach()}, strict=False)
    return mine, ref


def _set_running_stats(mod, ref):
    """Give `mod` the reference's running statistics (buffers or not)."""
    for name in _BUFFERS:
        setattr(mod, name, getattr(ref, name).clone())


def _batches(seed, steps=3, shape=(4, 3, 5, 6)):
    """`steps` (input, upstream gradient) pairs with a different mean/scale per step."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=g, dtype=torch.float64) * (1 + i) + 0.5 * i,
             torch.randn(shape, generator=g, dtype=torch.float64)) for i in range(steps)]


def _run(mod, batches, student):
    """Forward/backward each batch; record output, grads and buffers after every step."""
    records = []
    for x, grad_out in batches:
        x = x.clone().requires_grad_(True)
        for p in mod.parameters():
            p.grad = None
        out = _student(mod, x) if student else mod(x)
        out.backward(grad_out)
        rec = {"out": out.detach(), "x.grad": x.grad}
        rec.update({f"{n}.grad": p.grad for n, p in mod.named_parameters()})
        rec.update({n: getattr(mod, n, None) for n in _BUFFERS})
        rec.update({n: v.clone() for n, v in rec.items() if n in _BUFFERS and v is not None})
        records.append(rec)
    return records


def _compare(mod, ref, batches, keys):
    """Run both modules on `batches` and compare `keys` after every step."""
    got, want = _run(mod, batches, True), _run(ref, batches, False)
    for step, (a, b) in enumerate(zip(got, want)):
        for k in keys:
            assert a.get(k) is not None, f"step {step}: {k} is missing (None)"
            torch.testing.assert_close(a[k], b[k], rtol=1e-7, atol=1e-7,
                                       msg=lambda m, k=k, step=step: f"step {step}: {k}: {m}")
'''

# (grade_id, points, visible part, hidden part)
TESTS = [
    ("test_train_forward", 2, '''\
# Training mode: outputs match nn.BatchNorm2d.
mine, ref = _make(seed=1)
_compare(mine, ref, _batches(10, steps=1), ["out"])
''', '''\
mine, ref = _make(seed=11)
_compare(mine, ref, _batches(110, steps=3), ["out"])
mine, ref = _make(seed=12, eps=1e-3)
_compare(mine, ref, _batches(120, steps=3, shape=(2, 3, 7, 4)), ["out"])
'''),
    ("test_train_grads", 2, '''\
# Training mode: input, weight and bias gradients match nn.BatchNorm2d.
mine, ref = _make(seed=2)
_compare(mine, ref, _batches(20, steps=1), ["x.grad", "weight.grad", "bias.grad"])
''', '''\
mine, ref = _make(seed=21)
_compare(mine, ref, _batches(210, steps=3), ["x.grad", "weight.grad", "bias.grad"])
'''),
    ("test_running_stats", 2, '''\
# Training mode: running_mean, running_var (unbiased) and num_batches_tracked after each step.
mine, ref = _make(seed=3)
_compare(mine, ref, _batches(30, steps=1), ["running_mean", "running_var", "num_batches_tracked"])
''', '''\
mine, ref = _make(seed=31)
_compare(mine, ref, _batches(310, steps=3), ["running_mean", "running_var", "num_batches_tracked"])
mine, ref = _make(seed=32, momentum=0.3)
_compare(mine, ref, _batches(320, steps=3), ["running_mean", "running_var", "num_batches_tracked"])
'''),
    ("test_eval_mode", 1, '''\
# Eval mode: normalise with the running statistics, leave them unchanged (hidden).
''', '''\
mine, ref = _make(seed=4)
ref(_batches(40, steps=1)[0][0])          # give the reference non-trivial running stats
_set_running_stats(mine, ref)             # eval is graded apart from the running-stat update
mine.eval()
ref.eval()
_compare(mine, ref, _batches(41, steps=3),
         ["out", "x.grad", "weight.grad", "bias.grad",
          "running_mean", "running_var", "num_batches_tracked"])
'''),
    ("test_momentum_none", 1, '''\
# momentum=None: running_mean is a cumulative average over the batches seen (hidden).
# (running_var's unbiased update is graded in test_running_stats.)
''', '''\
mine, ref = _make(seed=5, momentum=None)
_compare(mine, ref, _batches(50, steps=3), ["out", "running_mean", "num_batches_tracked"])
'''),
    ("test_affine_false", 1, '''\
# affine=False: no weight/bias, same outputs and input gradients (hidden).
''', '''\
mine, ref = _make(seed=6, affine=False)
assert mine.weight is None and mine.bias is None, "affine=False: weight and bias must be None"
assert dict(mine.named_parameters()) == {}, "affine=False: the module must have no parameters"
_compare(mine, ref, _batches(60, steps=3), ["out", "x.grad", "running_mean"])
'''),
    ("test_no_running_stats", 1, '''\
# track_running_stats=False: no buffers, batch statistics in train and eval mode (hidden).
''', '''\
mine, ref = _make(seed=7, track_running_stats=False)
for name in ("running_mean", "running_var", "num_batches_tracked"):
    assert getattr(mine, name) is None, f"track_running_stats=False: {name} must be None"
_compare(mine, ref, _batches(70, steps=3), ["out", "x.grad", "weight.grad", "bias.grad"])
mine.eval()
ref.eval()
_compare(mine, ref, _batches(71, steps=2), ["out", "x.grad", "weight.grad", "bias.grad"])
'''),
    ("test_state_dict", 1, '''\
# state_dict: same keys, dtypes and initial values as nn.BatchNorm2d; loads torch's state_dict (hidden).
''', '''\
fresh, torch_fresh = _student(lambda: MyBatchNorm2d(5)), nn.BatchNorm2d(5)
got, want = fresh.state_dict(), torch_fresh.state_dict()
assert sorted(got) == sorted(want), f"state_dict keys {sorted(got)} != {sorted(want)}"
for k in want:
    torch.testing.assert_close(got[k], want[k], msg=lambda m, k=k: f"initial {k}: {m}")
mine, ref = _make(seed=8)
_compare(mine, ref, _batches(80, steps=1), ["out"])
'''),
]


def _meta(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def build() -> nbformat.NotebookNode:
    """The source notebook (with solution and hidden tests)."""
    cells = [
        new_markdown_cell(INTRO, metadata=_meta("intro", locked=True)),
        new_code_cell(SOLUTION.read_text().rstrip("\n"),
                      metadata=_meta(STUDENT_CELL_ID, solution=True)),
        new_code_cell(HELPERS.rstrip("\n"), metadata=_meta("helpers", locked=True)),
    ]
    for grade_id, points, visible, hidden in TESTS:
        source = visible + "### BEGIN HIDDEN TESTS\n" + hidden + "### END HIDDEN TESTS"
        cells.append(new_code_cell(source, metadata=_meta(grade_id, grade=True, locked=True,
                                                          points=points)))
    for i, cell in enumerate(cells):  # stable ids keep the committed notebook diff-friendly
        cell["id"] = f"cell-{i:02d}"
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                       "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb


def main() -> None:
    nbformat.write(build(), NOTEBOOK)
    print(f"wrote {NOTEBOOK} ({sum(p for _, p, _, _ in TESTS)} points in {len(TESTS)} grade cells)")


if __name__ == "__main__":
    main()
