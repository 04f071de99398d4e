"""hw12 hidden checks: two epochs over a shuffled loader, other batch sizes, more classes."""

import pytest

from kit.grader.suite import assert_close, fetch, sibling

P = sibling(__file__, "test_loop.py")
R = P.R
pytestmark = pytest.mark.hidden


@pytest.mark.component("train_epoch")
@pytest.mark.points(2)
def test_hidden_two_epochs(student, child):
    """two epochs over a shuffled loader (11 samples in batches of 3): the parameters after each epoch"""
    model, loader, loss_fn, opt = P.parts(child, seed=31, n=11, batch_size=3, lr=0.3, shuffle_seed=33)
    student.train_epoch(model, loader, loss_fn, opt, "cpu")
    first = model.state()
    student.train_epoch(model, loader, loss_fn, opt, "cpu")
    got = fetch(first, model.state())
    want = R.trained(31, 11, 3, lr=0.3, epochs=2, shuffle_seed=33)["states"]
    for epoch in range(2):
        assert_close(got[epoch], want[epoch], name=f"parameters after epoch {epoch + 1}")


@pytest.mark.component("train_epoch")
def test_hidden_train_loss(student, child):
    """13 samples in batches of 5 (5, 5, 3), lr=0: the mean loss per sample"""
    model, loader, loss_fn, opt = P.parts(child, seed=35, n=13, batch_size=5, lr=0.0)
    got = P.number(fetch(student.train_epoch(model, loader, loss_fn, opt, "cpu")), "train_epoch's result")
    assert_close(got, R.epoch_loss(35, 13, 5)["loss"], name="train_epoch's mean loss per sample")


@pytest.mark.component("evaluate")
def test_hidden_evaluate_loss(student, child):
    """23 samples in batches of 8 (8, 8, 7), 5 classes: the mean loss per sample"""
    got = P.number(P.evaluate(student, child, seed=37, n=23, batch_size=8, classes=5)[0], "evaluate's loss")
    assert_close(got, R.evaluated(37, 23, 8, classes=5)["loss"], name="evaluate's mean loss per sample")


@pytest.mark.component("evaluate")
def test_hidden_evaluate_accuracy(student, child):
    """23 samples in batches of 8 (8, 8, 7), 5 classes: the accuracy"""
    got = P.number(P.evaluate(student, child, seed=37, n=23, batch_size=8, classes=5)[1], "evaluate's accuracy")
    assert_close(got, R.evaluated(37, 23, 8, classes=5)["accuracy"], name="evaluate's accuracy")
