"""hw6 hidden checks: shortcuts that change only the stride or only the width, other layouts."""

import pytest

from kit.grader.suite import fetch, reference, sibling

P = sibling(__file__, "test_resnet.py")
R = P.R
pytestmark = pytest.mark.hidden


@pytest.mark.component("BasicBlock")
def test_hidden_block_stride_only(student, child):
    """BasicBlock(16, 16, stride=2): the stride alone calls for a projection shortcut"""
    P.block_check(student, child, 16, 16, 2, seed=21)


@pytest.mark.component("BasicBlock")
def test_hidden_block_channels_only(student, child):
    """BasicBlock(8, 16, stride=1): the width alone calls for a projection shortcut"""
    P.block_check(student, child, 8, 16, 1, seed=23)


@pytest.mark.component("ResNet")
def test_hidden_resnet34_layout(student, child):
    """ResNet(BasicBlock, [3, 4, 6, 3]) (ResNet-34): 21,282,122 parameters and the reference's state_dict keys"""
    P.count_check(student, child, (3, 4, 6, 3), 10)
    got = fetch(child.suite.shapes(student.ResNet(student.BasicBlock, [3, 4, 6, 3]).state_dict()))
    P.check_layout(got, dict(R.layout((3, 4, 6, 3), 10)), "ResNet(BasicBlock, [3, 4, 6, 3])")


OTHER_LAYOUT = (2, 1, 1, 2)


@reference
def other_layout(mistake: str | None = None):
    """The reference's eval-mode logits of ResNet(BasicBlock, [2, 1, 1, 2], num_classes=7) holding
    random_state(seed=25), for images(1, seed=25)."""
    x = P.images(1, seed=25)[0]
    return R.forward(R.random_state(R.layout(OTHER_LAYOUT, 7), seed=25), x, training=False, mistake=mistake)


@pytest.mark.component("ResNet")
def test_hidden_other_layout(student, child):
    """ResNet(BasicBlock, [2, 1, 1, 2], num_classes=7) in eval mode: logits match the reference"""
    x = P.images(1, seed=25)[0]
    m = P.student_net(student, child, OTHER_LAYOUT, num_classes=7, seed=25)
    m.eval()
    P.close(fetch(m(x)), other_layout(), "logits in eval mode",
            lambda: {P.STRIDE_MISTAKE: other_layout("stride_on_conv2")})
