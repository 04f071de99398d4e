"""A correct loop written differently: batches unpacked from a tuple, model.zero_grad(set_to_none=False),
sums kept in detached tensors and converted once at the end, torch.inference_mode() for evaluation."""
import torch


def train_epoch(model, loader, loss_fn, optimizer, device):
    model.train()
    seen, total = 0, torch.zeros((), dtype=torch.float64)
    for batch in loader:
        inputs, targets = (t.to(device) for t in batch)
        model.zero_grad(set_to_none=False)
        batch_loss = loss_fn(model(inputs), targets)
        batch_loss.backward()
        optimizer.step()
        total += batch_loss.detach().cpu() * targets.size(0)
        seen += targets.size(0)
    return float(total / seen)


def evaluate(model, loader, loss_fn, device):
    model.eval()
    seen, total, hits = 0, 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            inputs, targets = (t.to(device) for t in batch)
            logits = model(inputs)
            total += float(loss_fn(logits, targets)) * len(targets)
            hits += int(torch.eq(logits.max(dim=1).indices, targets).sum())
            seen += len(targets)
    return (total / seen, hits / seen)
