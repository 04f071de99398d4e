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
