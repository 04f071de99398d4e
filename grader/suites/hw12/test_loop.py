"""hw12 public checks: train_epoch and evaluate against a reference loop, by what they do.

The student's loop runs in the child on real torch objects built by remote.py: a DataLoader over
synthetic data (10 samples in batches of 4: the last batch holds 2), a small float64 classifier
that records every forward (mode, autograd, batch device, earlier graphs still alive),
nn.CrossEntropyLoss and an SGD optimizer. Each check looks at one property and keeps the others
out of its data: the loss checks use lr=0 (the parameters stay put, so a wrong step cannot change
the losses), the value checks use a model without dropout or batch norm (so the mode cannot change
the values), and the model handed to a check of the mode starts in the other mode.
"""

import pytest
import torch

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, sibling

R = sibling(__file__, "loop_reference.py")
train = pytest.mark.component("train_epoch")
evaluation = pytest.mark.component("evaluate")

SEED, N, BATCH = 1, 10, 4  # batches of 4, 4 and 2
BATCHES = -(-N // BATCH)


def parts(child, *, seed=SEED, n=N, batch_size=BATCH, lr=0.5, device="cpu", classes=3, shuffle_seed=None,
          **probe):
    """The model, loader, loss function and optimizer the student's loop is given (built in the child)."""
    model = child.suite.probe(seed, device=device, classes=classes, **probe)
    loader = child.suite.loader(seed + 1, n, batch_size, classes=classes, shuffle_seed=shuffle_seed)
    return model, loader, child.torch.nn.CrossEntropyLoss(), child.suite.SGD(model.parameters(), lr)


def number(value, what: str) -> float:
    """A returned value as a float for comparing (a one-element tensor too: its type has a check of its own)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    fail(f"{what} should be a number, got {type(value).__name__}"
         + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else ""))


def forwards(calls, what: str) -> list:
    if not isinstance(calls, list) or not calls:
        fail(f"{what} never called the model")
    return calls


# --- train_epoch -------------------------------------------------------------------------------------

@train
@pytest.mark.points(3)
def test_train_parameters(student, child):
    """after one epoch (batches of 4, 4, 2; SGD lr=0.5) the parameters equal the reference loop's"""
    model, loader, loss_fn, opt = parts(child)
    student.train_epoch(model, loader, loss_fn, opt, "cpu")
    got, steps = fetch(model.state(), opt.steps)
    want = R.trained(SEED, N, BATCH)["states"][0]
    try:
        assert_close(got, want, name="parameters after one epoch")
    except CheckFailed as exc:
        text = str(exc)
        for mistake, cause in R.TRAIN_MISTAKES.items():
            if _close(got, R.trained(SEED, N, BATCH, mistake=mistake)["states"][0]):
                text += f"\n  likely cause: {cause}"
                break
        if steps != BATCHES:
            text += f"\n  optimizer.step() was called {steps} time(s) for {BATCHES} batches: call it once per batch"
        fail(text)


def _close(got, want) -> bool:
    try:
        assert_close(got, want, name="")
    except CheckFailed:
        return False
    return True


@train
@pytest.mark.points(2)
def test_train_loss(student, child):
    """returns the epoch's mean loss per sample: batch losses weighted by batch size (lr=0: fixed losses)"""
    model, loader, loss_fn, opt = parts(child, lr=0.0)
    got = number(fetch(student.train_epoch(model, loader, loss_fn, opt, "cpu")), "train_epoch's result")
    want = R.epoch_loss(SEED, N, BATCH)
    assert_close(got, want["loss"], name="train_epoch's mean loss per sample",
                 mistakes={R.LOSS_MISTAKES[m]: value for m, value in want["mistakes"].items()})


@train
def test_train_returns_float(student, child):
    """returns a Python float (loss.item(), not a tensor)"""
    model, loader, loss_fn, opt = parts(child, lr=0.0)
    result = student.train_epoch(model, loader, loss_fn, opt, "cpu")
    got, kind = fetch(result, child.suite.kind(result))
    if not isinstance(got, float):
        fail(f"train_epoch returned a {kind}, not a Python float: accumulate loss.item() (a float), or return "
             "float(...)" + (" (a tensor that requires grad also keeps the whole epoch's graph alive)"
                             if kind == "tensor that requires grad" else ""))


@train
def test_train_mode(student, child):
    """puts the model in train mode: every forward runs in train mode (the model is handed over in eval mode)"""
    model, loader, loss_fn, opt = parts(child)
    model.eval()
    student.train_epoch(model, loader, loss_fn, opt, "cpu")
    calls = forwards(fetch(model.calls), "train_epoch")
    for i, call in enumerate(calls):
        if call["modes"] != [True]:
            fail(f"forward {i + 1} ran with the model in eval mode{' (partly)' if len(call['modes']) > 1 else ''}: "
                 "call model.train() at the start of train_epoch (evaluate() leaves the model in eval mode, and "
                 "dropout and batch norm behave differently there)")


@train
def test_train_graph_released(student, child):
    """no batch's autograd graph outlives its step (the loss is accumulated as a number, not a tensor)"""
    model, loader, loss_fn, opt = parts(child)
    student.train_epoch(model, loader, loss_fn, opt, "cpu")
    calls, alive = fetch(model.calls, model.graphs_alive())
    why = ("adding `loss` (a tensor) to a running total, or keeping it in a list, keeps every batch's graph in "
           "memory; accumulate loss.item() instead")
    for i, call in enumerate(forwards(calls, "train_epoch")):
        if call["earlier_graphs"] > 1:  # the previous batch's may still be referenced by `loss` until it is rebound
            fail(f"when batch {i + 1} went through the model, the autograd graphs of {call['earlier_graphs']} earlier "
                 f"batches were still alive: {why}")
    if alive:
        fail(f"after train_epoch returned, the autograd graphs of {alive} batches were still alive: {why}")


# --- evaluate ----------------------------------------------------------------------------------------

def evaluate(student, child, seed=SEED, n=N, batch_size=BATCH, classes=3):
    """evaluate()'s result (fetched), on a model without dropout or batch norm."""
    model, loader, loss_fn, _ = parts(child, seed=seed, n=n, batch_size=batch_size, classes=classes)
    result = fetch(student.evaluate(model, loader, loss_fn, "cpu"))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"evaluate should return (mean loss, accuracy), got {type(result).__name__}"
             + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    return result


@evaluation
@pytest.mark.points(2)
def test_evaluate_loss(student, child):
    """the first value is the mean loss per sample: batch losses weighted by batch size"""
    got = number(evaluate(student, child)[0], "evaluate's loss")
    want = R.evaluated(SEED, N, BATCH)
    assert_close(got, want["loss"], name="evaluate's mean loss per sample",
                 mistakes={R.LOSS_MISTAKES[m]: value for m, value in want["loss_mistakes"].items()})


@evaluation
@pytest.mark.points(2)
def test_evaluate_accuracy(student, child):
    """the second value is the accuracy: correct predictions (argmax) / number of samples"""
    got = number(evaluate(student, child)[1], "evaluate's accuracy")
    want = R.evaluated(SEED, N, BATCH)
    assert_close(got, want["accuracy"], name="evaluate's accuracy",
                 mistakes={R.ACCURACY_MISTAKES[m]: value for m, value in want["accuracy_mistakes"].items()})


@evaluation
def test_evaluate_returns_floats(student, child):
    """returns a tuple of two Python floats (.item(), not tensors)"""
    model, loader, loss_fn, _ = parts(child)
    result = student.evaluate(model, loader, loss_fn, "cpu")
    got, kind = fetch(result, child.suite.kind(result))
    if not isinstance(got, tuple) or len(got) != 2 or not all(isinstance(v, float) for v in got):
        fail(f"evaluate returned a {kind}: return a tuple (loss, accuracy) of two Python floats (use .item(), "
             "e.g. correct += (pred.argmax(1) == y).sum().item())")


@evaluation
@pytest.mark.points(2)
def test_evaluate_eval_mode(student, child):
    """puts the model in eval mode: dropout off, batch norm's running statistics used and left as they were"""
    model, loader, loss_fn, _ = parts(child, dropout=0.5, batchnorm=True)
    model.train()
    before = model.state()
    student.evaluate(model, loader, loss_fn, "cpu")
    calls, after, before = fetch(model.calls, model.state(), before)
    for i, call in enumerate(forwards(calls, "evaluate")):
        if call["modes"] != [False]:
            fail(f"forward {i + 1} ran with the model in train mode{' (partly)' if len(call['modes']) > 1 else ''}: "
                 "call model.eval() in evaluate (the model is handed over in train mode; there dropout drops and "
                 "batch norm uses and updates batch statistics)")
    assert_close(after, before, name="parameters and buffers after evaluate", rtol=0, atol=0)


@evaluation
def test_evaluate_no_grad(student, child):
    """builds no autograd graph (torch.no_grad()) and leaves every .grad as it was"""
    model, loader, loss_fn, _ = parts(child)
    student.evaluate(model, loader, loss_fn, "cpu")
    calls, grads = fetch(model.calls, child.suite.grads(model))
    for i, call in enumerate(forwards(calls, "evaluate")):
        if call["graph"]:
            fail(f"forward {i + 1} built an autograd graph: evaluate under `with torch.no_grad():` (or "
                 "torch.inference_mode()), which saves the memory and time of recording it")
    touched = sorted(name for name, grad in grads.items() if grad is not None)
    if touched:
        fail(f"evaluate changed the gradients of {', '.join(touched)}: evaluation runs no backward pass")


# --- GPU ---------------------------------------------------------------------------------------------

@train
@pytest.mark.gpu
@pytest.mark.points(2)
def test_cuda_train_epoch(student, child):
    """on CUDA (model on the GPU, batches on the CPU, device="cuda"): parameters and mean loss match"""
    model, loader, loss_fn, opt = parts(child, device="cuda")
    result = student.train_epoch(model, loader, loss_fn, opt, "cuda")
    got, loss, calls = fetch(model.state(), result, model.calls)
    devices = sorted({call["device"] for call in forwards(calls, "train_epoch")})
    if devices != ["cuda:0"]:
        fail(f"the model was called on batches on {', '.join(devices)}: move each batch to `device` "
             "(x, y = x.to(device), y.to(device))")
    want = R.trained(SEED, N, BATCH, device="cuda")
    assert_close(got, want["states"][0], name="parameters after one epoch on CUDA")
    assert_close(number(loss, "train_epoch's result"), want["losses"][0], name="train_epoch's mean loss on CUDA")


@evaluation
@pytest.mark.gpu
def test_cuda_evaluate(student, child):
    """on CUDA (model on the GPU, batches on the CPU, device="cuda"): loss and accuracy match"""
    model, loader, loss_fn, _ = parts(child, device="cuda")
    result = fetch(student.evaluate(model, loader, loss_fn, "cuda"))
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(f"evaluate should return (mean loss, accuracy), got {type(result).__name__}")
    want = R.evaluated(SEED, N, BATCH, device="cuda")
    assert_close(number(result[0], "evaluate's loss"), want["loss"], name="evaluate's mean loss on CUDA")
    assert_close(number(result[1], "evaluate's accuracy"), want["accuracy"], name="evaluate's accuracy on CUDA")


# --- on the GPU, or an emulated one ------------------------------------------------------------------


@pytest.mark.points(1)
@pytest.mark.parametrize("component", [pytest.param("train_epoch", marks=train, id="train_epoch"),
                                       pytest.param("evaluate", marks=evaluation, id="evaluate")])
def test_device_placement(student, child, component):
    """on the GPU (emulated without one; the numbers read there are 0): the model on the device, batches
    on the CPU, device given: every batch reaches the model on its device, parameters and gradients stay there"""
    dev = OnDevice(child)
    model, loader, loss_fn, opt = parts(child, device=dev.name, batchnorm=True, dropout=0.25)
    if component == "train_epoch":
        student.train_epoch(model, loader, loss_fn, opt, dev.name)
    else:
        student.evaluate(model, loader, loss_fn, dev.name)
    try:
        dev.expect(f"{component}(model, loader, loss_fn, {'optimizer, ' if component == 'train_epoch' else ''}"
                   f"{dev.name!r})", model=model, optimizer=opt)
    except CheckFailed as exc:  # a batch from the loader (made on its line) met the model: say what to do
        if not any(text in str(exc) for text in (" in loader", "(loader)")):
            raise
        fail(f"{exc}\n  the loader gives batches on the CPU: move each one to `device` before the model sees it "
             "(x, y = x.to(device), y.to(device))")
    devices = sorted({call["device"] for call in forwards(fetch(model.calls), component)})
    if any(not d.startswith(dev.name) for d in devices):
        fail(f"the model was called on batches on {', '.join(devices)}: move each batch to `device` "
             "(x, y = x.to(device), y.to(device))")
