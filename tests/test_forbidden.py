"""The static scan finds forbidden torch APIs however they are spelled, and only those."""
import pytest

from kit.grader.forbidden import scan

FORBIDDEN = ["torch.nn.functional.linear", "torch.nn.Linear", "torch.optim.Adam", "torch.optim._functional"]


@pytest.mark.parametrize("source", [
    "import torch.nn.functional as F\nclass MyLinear:\n  def f(self, x): return F.linear(x, w)",
    "import torch\nclass MyLinear:\n  def f(self, x): return torch.nn.functional.linear(x, w)",
    "from torch.nn.functional import linear as lin\nclass MyLinear:\n  def f(self, x): return lin(x, w)",
    "from torch.nn import functional\nclass MyLinear:\n"
    "  def f(self, x): return getattr(functional, 'lin' + 'ear')(x, w)",
    "import torch.nn.functional as F\nN = 'li' 'near'\nclass MyLinear:\n  def f(self, x): return getattr(F, N)(x)",
    "import torch.nn.functional as F\nclass MyLinear:\n  def f(self, x): return getattr(F, ''.join(['li', 'near']))(x)",
    "import torch.nn.functional as F\nclass MyLinear:\n  def f(self, x): return vars(F)['linear'](x)",
    "import torch\nclass MyLinear:\n  def f(self, x): return torch._C._nn.linear(x, w)",
    "import importlib\nclass MyLinear:\n"
    "  def f(self, x): return importlib.import_module('torch.nn.functional').linear(x)",
    "class MyLinear:\n  def f(self, x): return __import__('torch').nn.functional.linear(x)",
    "import torch.nn.functional as F\nf = F.linear\nclass MyLinear:\n  def f(self, x): return f(x)",
    "from torch import nn\nclass MyLinear(nn.Linear):\n  pass",
    "import torch.nn.functional as F\nclass MyLinear:\n  def f(self, x): return getattr(F, f'{\"lin\"}ear')(x)",
])
def test_spellings_are_caught(source):
    hits = scan(source, FORBIDDEN)
    assert [h.name for h in hits][:1] in (["torch.nn.functional.linear"], ["torch.nn.Linear"])
    assert {h.component for h in hits} <= {"MyLinear", None}


def test_whole_module_forbidden():
    hits = scan("import torch.optim._functional as Fo\nFo.adam(p)", FORBIDDEN)
    assert hits and hits[0].name == "torch.optim._functional" and hits[0].component is None


def test_honest_code_is_clean():
    source = ("import math\nimport torch\nfrom torch import nn\n"
              "class MyLinear(nn.Module):\n  def forward(self, x):\n"
              "    return x @ self.weight.T + torch.zeros(1)\n  linear = 3\n")
    assert scan(source, FORBIDDEN) == []


def test_syntax_error_is_left_to_the_import():
    assert scan("def f(:", FORBIDDEN) == []


HW1 = ["torch.nn.functional.linear", "torch.nn.Linear", "torch.addmm", "aten.addmm", "aten.linear"]


@pytest.mark.parametrize(("source", "name"), [
    ("class MyLinear:\n  def f(self, x): return self.bias.addmm(x, self.weight.T)", "torch.Tensor.addmm"),
    ("class MyLinear:\n  def f(self, x): return out.addmm_(x, self.weight.T)", "torch.Tensor.addmm_"),
    ("class MyLinear:\n  def f(self, x): return getattr(self.bias, 'add' + 'mm')(x, w)", "torch.Tensor.addmm"),
    ("import torch\nclass MyLinear:\n  def f(self, x): return torch.ops.aten.addmm.default(b, x, w)", "aten.addmm"),
    ("import torch\nclass MyLinear:\n  def f(self, x): return torch.ops.aten.addmm_(b, x, w)", "aten.addmm"),
    ("import torch\nclass MyLinear:\n  def f(self, x): return getattr(torch.ops.aten, 'lin' + 'ear')(x, w)",
     "aten.linear"),
])
def test_method_forms_and_aten_spellings(source, name):
    """issue 20: Tensor.addmm and torch.ops.aten.<op> spelled plainly slipped through."""
    assert [(h.name, h.component) for h in scan(source, HW1)] == [(name, "MyLinear")]


def test_a_method_of_the_students_own_is_not_a_method_form():
    source = "class MyLinear:\n  def addmm(self): pass\n  def f(self): self.addmm = 3\n"
    assert scan(source, HW1) == []


@pytest.mark.parametrize(("source", "name"), [
    ("import torch\nwith torch._C.DisableTorchFunction(): pass", "torch._C.DisableTorchFunction"),
    ("from torch._C import _pop_torch_function_stack as pop\npop()", "torch._C._pop_torch_function_stack"),
    ("from torch.utils._mode_utils import no_dispatch", "torch.utils._mode_utils.no_dispatch"),
    ("import torch\ntorch._C._ExcludeDispatchKeyGuard(keys)", "torch._C._ExcludeDispatchKeyGuard"),
    ("import torch\ntorch.ops.aten.mm.default.redispatch(keys, a, b)", "redispatch"),
    ("import threading", "threading"),
    ("from concurrent.futures import ThreadPoolExecutor", "concurrent.futures"),
    ("import torch\ntorch.jit.CompilationUnit('def f(x): return x')", "torch.jit"),
    ("import torch\nlib = getattr(torch, 'lib' + 'rary').Library('a', 'DEF')", "torch.library"),
    ("import torch\nf = torch.compile(g)", "torch.compile"),
    ("import torch\nf = torch._dynamo.optimize('eager')(g)", "torch._dynamo"),
    ("import torch.utils.cpp_extension as ext", "torch.utils.cpp_extension"),
    ("import ctypes", "ctypes"),
    ("import gc", "gc"),
    ("import importlib\ngc = importlib.import_module('g' + 'c')", "gc"),
    ("import sys\nframe = sys._getframe(1)", "sys._getframe"),
    ("def f(g): return g.__closure__", "__closure__"),
    ("def f(g): return getattr(g, '__clo' + 'sure__')", "__closure__"),
    ("def f(e): return e.__traceback__.tb_frame", "tb_frame"),
    ("import kit.grader.child.guard", "kit"),
])
def test_guard_rules_hold_in_every_assignment(source, name):
    """Turning the guard off, running code it cannot see, searching memory for it: forbidden with an empty list."""
    assert name in [h.name for h in scan(source, [])]


def test_naming_a_lazy_torch_module_does_not_import_it():
    """`torch._dynamo` is matched by name: resolving it would import it into the grader (seconds)."""
    import subprocess
    import sys

    code = ("import sys; from kit.grader.forbidden import scan; "
            "hits = scan('import torch\\ntorch._dynamo.optimize(1)', []); "
            "print(hits[0].name, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["torch._dynamo", "False"]


def test_every_runtime_rule_is_explained_and_no_assignment_api_is_a_rule(course):
    """The child's guard and the grader name the same rules; a student reads why each is forbidden."""
    from kit.grader.child import guard
    from kit.grader.forbidden import why

    for name in (*guard.RULES, *guard.LAZY_RULES, guard.POP_FUNCTION, guard.POP_DISPATCH, guard.TAMPERED,
                 guard.SUBCLASS):
        assert why(name), name
    for hw in ("hw1", "hw2", "hw3", "hw4", "hw5", "hw6"):
        for name in course.assignment(hw).all_forbidden():
            assert why(name) is None, name


def test_describe_says_why_a_rule_is_forbidden():
    from kit.grader.forbidden import describe

    assert describe("torch.addmm", "called while your code ran") == "torch.addmm (called while your code ran)"
    assert describe("gc", "my_linear.py, line 1: import gc") == \
        "gc (searches the grading process for kit's own objects; my_linear.py, line 1: import gc)"
