"""hw6 public checks: BasicBlock and the CIFAR ResNet against a reference written with functional ops.

The reference (reference.py) is a set of functions of a state_dict; each check loads the
same random state_dict into the student's module and compares outputs and gradients in
float64. To keep the CPU checks fast, outputs and gradients are compared on
ResNet(BasicBlock, [1, 1, 1, 1]) (every kind of block, half ResNet-18's cost) with two
images; resnet18() itself is checked by its parameters, state_dict and feature maps
(and by the GPU checks).
"""

import pytest
import torch

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, reference, sibling

R = sibling(__file__, "reference.py")
F64 = torch.float64
RESNET18 = (2, 2, 2, 2)
SMALL = (1, 1, 1, 1)  # the CPU value checks: every kind of block at half ResNet-18's cost
STRIDE_MISTAKE = "the stride is applied by conv2; conv1 (and the shortcut) must carry it"
block = pytest.mark.component("BasicBlock")
resnet = pytest.mark.component("ResNet")


# --- helpers -----------------------------------------------------------------------------------

def images(n: int, seed: int, device: str = "cpu", size: int = 32):
    """n random 32x32 RGB images and an upstream gradient for 10 logits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g, dtype=F64)
    up = torch.randn(n, 10, generator=g, dtype=F64)
    return x.to(device), up.to(device)


def student_net(student, child, num_blocks=RESNET18, num_classes: int = 10, seed: int = 0, device: str = "cpu"):
    """The student's network in float64 holding the reference's random state_dict, drawn in the child
    (resnet18() for the ResNet-18 layout)."""
    if tuple(num_blocks) == RESNET18:
        m = student.resnet18(num_classes=num_classes)
    else:
        m = student.ResNet(student.BasicBlock, list(num_blocks), num_classes=num_classes)
    m = m.to(device=device, dtype=F64)
    entries = list(R.layout(tuple(num_blocks), num_classes).items())
    m.load_state_dict(child.suite.random_state(entries, seed, device=device))
    return m


def close(actual, expected, name: str, mistakes=None, **tolerances) -> None:
    """assert_close; the known mistakes (a function returning {cause: value}) are computed only on failure."""
    try:
        assert_close(actual, expected, name=name, **tolerances)
    except CheckFailed:
        assert_close(actual, expected, name=name, mistakes=mistakes() if mistakes else None, **tolerances)


GRAD_KEYS = ("conv1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer2.0.shortcut.0.weight",
             "layer3.0.conv2.weight", "layer4.0.bn1.weight", "fc.weight", "fc.bias")


@reference
def net_reference(training: bool, mistake: str | None = None, device: str = "cpu", num_blocks=SMALL) -> dict:
    """The reference network's logits for images(2, seed=1), and the gradients of sum(logits * up) for
    the images and the parameters in GRAD_KEYS."""
    state = R.random_state(R.layout(num_blocks, 10), device=device)
    x, up = images(2, seed=1, device=device)
    out = R.with_grads(R.forward, state, x, up, training=training, mistake=mistake)
    return {**out, "grads": {key: out["grads"][key] for key in GRAD_KEYS}}


def keys_and_shapes(student_state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in student_state.items()}


def check_layout(got: dict, want: dict, what: str) -> None:
    """state_dict keys (in order) and shapes, with a message that names the first difference."""
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    if missing or extra:
        text = f"{what}: the state_dict keys differ from the reference's"
        if missing:
            text += f"\n  missing: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        if extra:
            text += f"\n  unexpected: {', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}"
        if any(k.endswith("shortcut.1.weight") for k in missing):
            text += ("\n  likely cause: a projection shortcut must be nn.Sequential(nn.Conv2d(..., 1, stride, "
                     "bias=False), nn.BatchNorm2d(...))")
        elif any(".shortcut." in k for k in extra):
            text += "\n  likely cause: a shortcut has a projection where the shape does not change"
        fail(text)
    assert_close(got, want, name=f"{what} shapes")


# --- BasicBlock ----------------------------------------------------------------------------------

@reference
def block_reference(in_channels: int, out_channels: int, stride: int, seed: int, mistake: str | None = None) -> dict:
    """BasicBlock(in, out, stride) as the reference: a random state_dict, an input x and an upstream gradient
    (seed), the train-mode output and input gradient of sum(output * up), and the eval-mode output."""
    state = R.random_state(R.block_layout(in_channels, out_channels, stride), seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, in_channels, 8, 8, generator=g, dtype=F64)
    up = torch.randn(2, out_channels, 8 // stride, 8 // stride, generator=g, dtype=F64)

    def fn(s, inp, training, mistake=None):
        return R.block_forward(s, "", inp, stride, training, mistake)

    train = R.with_grads(fn, state, x, up, training=True, mistake=mistake)
    return {"state": state, "x": x, "up": up, "output": train["output"], "input.grad": train["input.grad"],
            "eval": fn(state, x, training=False, mistake=mistake)}


def block_check(student, child, in_channels: int, out_channels: int, stride: int, seed: int, *,
                keys_only: bool = False) -> None:
    """BasicBlock(in, out, stride) alone: state_dict layout, then outputs in train and eval mode and the
    input gradient."""
    entries = R.block_layout(in_channels, out_channels, stride)
    m = student.BasicBlock(in_channels, out_channels, stride)
    expansion, got = fetch(m.expansion, m.state_dict(), finite=False)
    check_layout(keys_and_shapes(got), dict(entries), f"BasicBlock({in_channels}, {out_channels}, stride={stride})")
    if expansion != 1:
        fail(f"BasicBlock.expansion is {expansion!r}; it should be 1")
    if keys_only:
        return
    want = block_reference(in_channels, out_channels, stride, seed)
    state, x, up = want["state"], want["x"], want["up"]
    m = m.double()
    m.load_state_dict(state)
    xs = child.leaf(x)
    train_out = m(xs)
    (train_out * up).sum().backward()
    m.load_state_dict(state)  # the running statistics as they were before the train-mode pass
    m.eval()
    eval_out = m(x)
    got_train, got_grad, got_eval = fetch(train_out, xs.grad, eval_out)

    def hint(key):
        """{likely cause: that value of the block with the stride on conv2}, computed on failure; only a
        strided block can show it."""
        if stride == 1:
            return None
        return lambda: {STRIDE_MISTAKE: block_reference(in_channels, out_channels, stride, seed,
                                                        "stride_on_conv2")[key]}

    close(got_train, want["output"], "output in train mode", hint("output"))
    close(got_grad, want["input.grad"], "input.grad", hint("input.grad"))
    close(got_eval, want["eval"], "output in eval mode", hint("eval"))


@block
def test_block_identity(student, child):
    """BasicBlock(16, 16): identity shortcut (no state_dict entries), outputs and input gradient"""
    block_check(student, child, 16, 16, 1, seed=3)


@block
def test_block_projection_keys(student, child):
    """BasicBlock(8, 16, stride=2): projection shortcut = 1x1 conv (no bias) + BatchNorm2d"""
    block_check(student, child, 8, 16, 2, seed=5, keys_only=True)


@block
@pytest.mark.points(2)
def test_block_projection_forward(student, child):
    """BasicBlock(8, 16, stride=2): outputs in train and eval mode and input gradient"""
    block_check(student, child, 8, 16, 2, seed=5)


# --- ResNet --------------------------------------------------------------------------------------

def count_check(student, child, num_blocks, num_classes: int) -> None:
    entries = R.layout(tuple(num_blocks), num_classes)
    if tuple(num_blocks) == RESNET18:
        m, what = student.resnet18(num_classes=num_classes), f"resnet18(num_classes={num_classes})"
    else:
        m = student.ResNet(student.BasicBlock, list(num_blocks), num_classes=num_classes)
        what = f"ResNet(BasicBlock, {list(num_blocks)}, num_classes={num_classes})"
    params = fetch(child.suite.shapes(child.named_parameters(m)))
    got, want = sum(torch.Size(shape).numel() for shape in params.values()), R.parameter_count(entries)
    if got != want:
        cause = R.known_count_mistakes(entries).get(got - want)
        fail(f"{what} has {got:,} parameters; expected {want:,} ({got - want:+,})"
             + (f"\n  likely cause: {cause}" if cause else ""))


@resnet
@pytest.mark.points(2)
def test_param_count(student, child):
    """resnet18() has 11,173,962 parameters"""
    count_check(student, child, RESNET18, 10)


@resnet
def test_param_count_num_classes(student, child):
    """resnet18(num_classes=100) has 11,220,132 parameters (only fc changes)"""
    count_check(student, child, RESNET18, 100)


@resnet
@pytest.mark.points(2)
def test_state_dict_keys(student, child):
    """resnet18().state_dict() has the reference's keys, in order, with the same shapes"""
    got = fetch(child.suite.shapes(student.resnet18().state_dict()))
    check_layout(got, dict(R.layout()), "resnet18()")
    if list(got) != list(R.layout()):
        fail("resnet18().state_dict() has the right keys in another order: create the submodules in the order "
             "conv1, bn1, layer1..layer4, fc (and conv1, bn1, conv2, bn2, shortcut in a block)")


@resnet
def test_feature_shapes(student, child):
    """feature maps on a 32x32 image: stem 64x32x32, layer1 64x32x32, layer2 128x16x16, layer3 256x8x8,
    layer4 512x4x4"""
    x = images(1, seed=7)[0].float()
    m = student.resnet18()
    m.eval()
    y = child.torch.relu(m.bn1(m.conv1(x)))
    shapes = [y.shape]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        y = getattr(m, name)(y)
        shapes.append(y.shape)
    shapes.append(m(x).shape)
    got = fetch(*shapes)
    want = [(1, 64, 32, 32), (1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8), (1, 512, 4, 4), (1, 10)]
    names = ["relu(bn1(conv1(x)))", "layer1", "layer2", "layer3", "layer4", "the output"]
    for name, g, w in zip(names, got, want):
        if tuple(g) != w:
            fail(f"{name} has shape {tuple(g)}; expected {w}. On a 32x32 image the resolution goes "
                 "32 (stem, stride 1) -> 32 (layer1) -> 16 (layer2) -> 8 (layer3) -> 4 (layer4): "
                 "only the first block of layer2, layer3 and layer4 has stride 2")


@resnet
@pytest.mark.points(2)
def test_forward_train(student, child):
    """ResNet(BasicBlock, [1, 1, 1, 1]) in train mode (batch statistics): logits match the reference"""
    x, _ = images(2, seed=1)
    m = student_net(student, child, SMALL)
    m.train()
    close(fetch(m(x)), net_reference(True)["output"], "logits in train mode",
          lambda: {STRIDE_MISTAKE: net_reference(True, "stride_on_conv2")["output"]})


@resnet
@pytest.mark.points(2)
def test_forward_eval(student, child):
    """ResNet(BasicBlock, [1, 1, 1, 1]) in eval mode (running statistics): logits match the reference"""
    x, _ = images(2, seed=1)
    m = student_net(student, child, SMALL)
    m.eval()
    close(fetch(m(x)), net_reference(False)["output"], "logits in eval mode",
          lambda: {STRIDE_MISTAKE: net_reference(False, "stride_on_conv2")["output"]})


@resnet
@pytest.mark.points(2)
def test_gradients(student, child):
    """ResNet(BasicBlock, [1, 1, 1, 1]) in train mode: gradients of the input and of a few parameters"""
    x, up = images(2, seed=1)
    m = student_net(student, child, SMALL)
    m.train()
    xs = child.leaf(x)
    (m(xs) * up).sum().backward()
    got_x, got_p = fetch(xs.grad, child.suite.pick(child.grads(m), GRAD_KEYS))
    want = net_reference(True)
    close(got_x, want["input.grad"], "input.grad",
          lambda: {STRIDE_MISTAKE: net_reference(True, "stride_on_conv2")["input.grad"]})
    for key, grad in zip(GRAD_KEYS, got_p):
        if grad is None:
            fail(f"{key} has no gradient after backward")
        close(grad, want["grads"][key], f"{key}.grad")


@resnet
def test_sgd_reduces_loss(student, child):
    """two SGD steps on a fixed batch of 4 images at least halve the cross-entropy loss (of a network whose
    train-mode logits are the reference's)"""
    # anchor: a falling loss means something only for a network that computes the right function. A layout
    # that differs from the reference's (state_dict_keys grades it) or a stride mistake (feature_shapes and
    # the value checks grade and name it) is accepted here; any other wrong forward is not.
    layout = fetch(child.suite.shapes(student.ResNet(student.BasicBlock, list(SMALL)).state_dict()))
    if layout == dict(R.layout(SMALL, 10)):
        x, _ = images(2, seed=1)
        m = student_net(student, child, SMALL)
        m.train()
        logits = fetch(m(x))
        elsewhere = [net_reference(True, mistake)["output"] for mistake in ("stride_on_conv2", "layer4_stride_1")]
        if not any(isinstance(logits, torch.Tensor) and logits.shape == wrong.shape
                   and torch.allclose(logits, wrong, rtol=1e-7, atol=1e-7) for wrong in elsewhere):
            close(logits, net_reference(True)["output"], "logits in train mode, before any SGD step (a falling "
                  "loss is judged only on a network that computes the reference's function)")
    g = torch.Generator().manual_seed(11)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.tensor([0, 1, 2, 3])
    m = student.ResNet(student.BasicBlock, [1, 1, 1, 1], num_classes=4)
    m.train()
    opt = child.torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = child.torch.nn.functional.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss)
    losses.append(child.torch.nn.functional.cross_entropy(m(x), y))
    values = [float(v) for v in fetch(*losses)]
    if not all(torch.isfinite(torch.tensor(values))):
        fail(f"the loss became NaN or infinite: {values}")
    if not values[-1] < 0.5 * values[0]:
        fail("two SGD steps did not halve the loss on 4 fixed images: " + ", ".join(f"{v:.3f}" for v in values)
             + " (are all layers registered as submodules, so that parameters() finds them?)")


# --- GPU -----------------------------------------------------------------------------------------

GPU = "cuda"


@resnet
@pytest.mark.gpu
@pytest.mark.points(2)
def test_cuda_forward_backward(student, child):
    """on CUDA: resnet18() logits in train mode, input gradient and parameter gradients match"""
    x, up = images(2, seed=1, device=GPU)
    m = student_net(student, child, device=GPU)
    m.train()
    xs = child.leaf(x)
    out = m(xs)
    (out * up).sum().backward()
    got_out, got_x, got_p = fetch(out, xs.grad, child.suite.pick(child.grads(m), GRAD_KEYS))
    want = net_reference(True, device=GPU, num_blocks=RESNET18)
    assert_close(got_out, want["output"], name="logits")
    assert_close(got_x, want["input.grad"], name="input.grad")
    for key, grad in zip(GRAD_KEYS, got_p):
        if grad is None:
            fail(f"{key} has no gradient after backward")
        assert_close(grad, want["grads"][key], name=f"{key}.grad")


@resnet
@pytest.mark.gpu
def test_cuda_autocast_step(student, child):
    """on CUDA: two training steps under autocast(float16) with a GradScaler run and update the weights"""
    g = torch.Generator().manual_seed(13)
    x = torch.randn(4, 3, 32, 32, generator=g).to(GPU)
    y = torch.tensor([0, 1, 2, 3], device=GPU)
    m = student.resnet18().to(GPU)
    m.train()
    before = fetch(m.conv1.weight, m.fc.weight)
    opt = child.torch.optim.SGD(m.parameters(), lr=0.01)
    scaler = child.torch.amp.GradScaler(GPU, init_scale=256.0)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        out = child.autocast(m, x, device_type=GPU, dtype=torch.float16)
        loss = child.torch.nn.functional.cross_entropy(out.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss)
    *values, conv1, fc = fetch(*losses, m.conv1.weight, m.fc.weight)
    for name, old, new in (("conv1.weight", before[0], conv1), ("fc.weight", before[1], fc)):
        if not torch.isfinite(new).all():
            fail(f"{name} is not finite after two GradScaler steps")
        if torch.equal(old, new):
            fail(f"{name} did not change after two GradScaler steps (were both steps skipped for inf/NaN "
                 "gradients?)")
    if not all(torch.isfinite(v) for v in values):
        fail(f"the loss under autocast is not finite: {[float(v) for v in values]}")


@resnet
@pytest.mark.gpu
def test_cuda_channels_last(student, child):
    """on CUDA: the network in channels_last memory format gives the same logits and input gradient"""
    x, up = images(2, seed=1, device=GPU)
    m = student_net(student, child, device=GPU)
    m.to(memory_format=child.torch.channels_last)
    m.train()
    xs = child.leaf(x)
    out = m(xs.contiguous(memory_format=child.torch.channels_last))
    (out * up).sum().backward()
    got_out, got_x = fetch(out, xs.grad)
    want = net_reference(True, device=GPU, num_blocks=RESNET18)
    assert_close(got_out, want["output"], name="logits (channels_last)")
    assert_close(got_x, want["input.grad"], name="input.grad (channels_last)")


# --- on the GPU, or an emulated one --------------------------------------------------------------------


@pytest.mark.parametrize("component", [pytest.param("BasicBlock", marks=block, id="BasicBlock"),
                                       pytest.param("ResNet", marks=resnet, id="ResNet")])
def test_device_placement(student, child, component):
    """on the GPU (emulated without one): training, backward and eval keep outputs, gradients and buffers there"""
    dev = OnDevice(child)
    if component == "BasicBlock":
        cases = [(student.BasicBlock(16, 16), (2, 16, 8, 8), (2, 16, 8, 8)),
                 (student.BasicBlock(16, 32, 2), (2, 16, 8, 8), (2, 32, 4, 4))]
    else:
        cases = [(student.ResNet(student.BasicBlock, list(SMALL)), (2, 3, 32, 32), (2, 10))]
    for m, shape, out_shape in cases:
        m = m.to(dev.name)
        m.train()
        x = dev.randn(*shape, requires_grad=True)
        y = m(x)
        y.backward(dev.randn(*out_shape))
        m.eval()
        z = m(dev.randn(*shape))
        dev.expect(f"{component}: training, backward and eval", output=y, eval_output=z,
                   **{"x.grad": x.grad, component: m})
