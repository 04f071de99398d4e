"""Solution markers become stubs that import and say what to write."""
import pytest

from kit.grader.release import MarkerError, make_stub

SOLUTION = '''class A:
    def f(self):
        x = 1
        ### BEGIN SOLUTION return twice x
        return 2 * x
        ### END SOLUTION

    def g(self):
        ### BEGIN SOLUTION
        return 3
        ### END SOLUTION
'''


def test_regions_become_not_implemented_with_hints():
    stub = make_stub(SOLUTION)
    assert "return 2 * x" not in stub and "return 3" not in stub
    assert "        raise NotImplementedError('return twice x')\n" in stub
    assert "raise NotImplementedError('replace this line with your code')" in stub
    namespace = {}
    exec(compile(stub, "stub", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="twice"):
        namespace["A"]().f()


@pytest.mark.parametrize("bad", ["### END SOLUTION\n", "### BEGIN SOLUTION\nx\n",
                                 "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n"])
def test_broken_markers_are_reported(bad):
    with pytest.raises(MarkerError):
        make_stub(bad)
