"""Benchmark of `kit similarity` (issue 18): a class of synthetic hw6 submissions, timed end to end.

    python bench/similarity.py [--n 500] [--copies 5] [--seed 18] [--keep DIR]

Each synthetic student writes a correct CIFAR ResNet by making their own choices at about
twenty places where students really differ (how the shortcut is built, which ReLU, how the
stages are made, pooled and flattened, the order of statements, helper functions), with
their own names, comments, docstrings, blank lines and order of classes and methods.
`--copies` of them hand in a copy of a classmate's: the same code with every name renamed,
the methods and classes reordered and the comments rewritten. The script times the command
an instructor runs, `kit similarity hw6 DIR --json` (a subprocess, Python's start-up and
the HTML report included), then says whether every planted copy was flagged and how many
other pairs were. Prints one Markdown report.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMES = ["out", "h", "y", "z", "feat", "act", "t", "res", "val", "tmp", "hidden", "signal", "a", "b", "q"]
ARGS = [("in_channels", "out_channels"), ("cin", "cout"), ("inp", "outp"), ("in_planes", "planes"),
        ("n_in", "n_out"), ("c_in", "c_out"), ("ch_in", "ch_out")]


def write(seed: int, rng: random.Random) -> str:
    """A correct hw6 submission: its structure drawn from `seed` (about 40 places where students' code differs,
    each chosen on its own), its names, comments, docstrings, blank lines and order of definitions from `rng`.
    Two calls with the same seed write the same program, disguised differently."""
    c = random.Random(seed)

    def pick(*options):
        return options[c.randrange(len(options))]

    v = rng.sample(NAMES, 6)
    cin, cout = rng.choice(ARGS)
    blk, nb = rng.choice(["block", "blk", "block_cls", "unit"]), rng.choice(["num_blocks", "counts", "n_blocks"])
    x = rng.choice(["x", "inp", "inputs", "images", "data"])
    sup = pick("super().__init__()", "super({cls}, self).__init__()", "nn.Module.__init__(self)")
    helper = pick(False, True)

    def comment() -> str:
        return rng.choice(["", "", "", f"  # {rng.choice(['todo', 'see lecture 4', 'as in the paper', 'ok'])}"])

    def conv(a: str, b: str, k: int, stride: str, pad: int) -> str:
        if helper and k == 3:
            return pick(f"conv3x3({a}, {b}, {stride})", f"conv3x3({a}, {b}, stride={stride})")
        return pick(f"nn.Conv2d({a}, {b}, {k}, {stride}, {pad}, bias=False)",
                    f"nn.Conv2d({a}, {b}, kernel_size={k}, stride={stride}, padding={pad}, bias=False)",
                    f"nn.Conv2d({a}, {b}, {k}, stride={stride}, padding={pad}, bias=False)",
                    f"nn.Conv2d({a}, {b}, kernel_size=({k}, {k}), stride=({stride}, {stride}), padding={pad}, "
                    "bias=False)",
                    f"nn.Conv2d(in_channels={a}, out_channels={b}, kernel_size={k}, stride={stride}, padding={pad}, "
                    "bias=False)")

    def bn(ch: str) -> str:
        return pick(f"nn.BatchNorm2d({ch})", f"nn.BatchNorm2d(num_features={ch})", f"nn.BatchNorm2d({ch}, eps=1e-5)",
                    f"nn.BatchNorm2d({ch}, momentum=0.1)")

    relu_kind = c.randrange(5)

    def relu(e: str) -> str:
        return [f"F.relu({e})", f"torch.relu({e})", f"self.relu({e})", f"({e}).relu()",
                f"torch.clamp({e}, min=0)"][relu_kind]

    cond = pick(f"stride != 1 or {cin} != {cout}", f"{cin} != {cout} or stride != 1",
                f"stride > 1 or {cin} != {cout}", f"(stride, {cin}) != (1, {cout})",
                f"not (stride == 1 and {cin} == {cout})")
    proj = f"{conv(cin, cout, 1, 'stride', 0)}, {bn(cout)}"
    shortcut = pick(
        [f"if {cond}:", f"    self.shortcut = nn.Sequential({proj})", "else:", "    self.shortcut = nn.Sequential()"],
        ["self.shortcut = nn.Sequential()", f"if {cond}:", f"    self.shortcut = nn.Sequential({proj})"],
        [f"{v[0]} = []", f"if {cond}:", f"    {v[0]} = [{proj}]", f"self.shortcut = nn.Sequential(*{v[0]})"],
        [f"self.shortcut = nn.Sequential({proj}) if {cond} else nn.Sequential()"],
        [f"{v[0]} = {cond}", f"self.shortcut = nn.Sequential({proj}) if {v[0]} else nn.Sequential()"])
    convs = [f"self.conv1 = {conv(cin, cout, 3, 'stride', 1)}", f"self.bn1 = {bn(cout)}",
             f"self.conv2 = {conv(cout, cout, 3, '1', 1)}", f"self.bn2 = {bn(cout)}"]
    extras = [line for line in ("self.stride = stride", f"self.{cin} = {cin}") if c.random() < 0.3]
    # the order of submodules is part of the contract (state_dict keys), so it never varies
    block_init = [sup.format(cls="BasicBlock"), *[line + comment() for line in convs], *shortcut, *extras]
    if relu_kind == 2:
        block_init.append(pick("self.relu = nn.ReLU()", "self.relu = nn.ReLU(inplace=False)"))
    o = v[1]
    fwd = c.randrange(4)
    if fwd == 0:
        body = [f"{o} = {relu(f'self.bn1(self.conv1({x}))')}", f"{o} = self.bn2(self.conv2({o}))"]
    elif fwd == 1:
        body = [f"{o} = self.conv1({x})", f"{o} = self.bn1({o})", f"{o} = {relu(o)}", f"{o} = self.conv2({o})",
                f"{o} = self.bn2({o})"]
    elif fwd == 2:
        body = [f"{v[2]} = self.shortcut({x})", f"{o} = self.bn2(self.conv2({relu(f'self.bn1(self.conv1({x}))')}))"]
    else:
        body = [f"{o} = {relu(f'self.bn1(self.conv1({x}))')}", f"{o} = self.conv2({o})", f"{o} = self.bn2({o})"]
    skip = v[2] if fwd == 2 else f"self.shortcut({x})"
    body += pick([f"{o} = {o} + {skip}", f"return {relu(o)}"], [f"{o} += {skip}", f"return {relu(o)}"],
                 [f"return {relu(f'{o} + {skip}')}"], [f"{o} = {relu(f'{o} + {skip}')}", f"return {o}"])
    block_methods = {"__init__": (f"def __init__(self, {cin}, {cout}, stride=1):", block_init),
                     "forward": (f"def forward(self, {x}):", body)}

    widths = pick("(64, 128, 256, 512)", "[64, 128, 256, 512]", "[64 * 2 ** i for i in range(4)]")
    strides = pick("(1, 2, 2, 2)", "[1, 2, 2, 2]", "[1] + [2] * 3")
    stem = [f"self.conv1 = {conv('3', '64', 3, '1', 1)}", f"self.bn1 = {bn('64')}"]
    track = pick("self.in_channels", "self.inplanes", "self.in_planes")
    stages_kind = c.randrange(4)
    if stages_kind == 0:
        stages = [f"self.layer{i + 1} = self._make_layer({blk}, {w}, {nb}[{i}], {st})"
                  for i, (w, st) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2)))]
    elif stages_kind == 1:
        stages = [f"for {v[3]}, ({v[4]}, {v[5]}) in enumerate(zip({widths}, {strides})):",
                  f"    setattr(self, f'layer{{{v[3]} + 1}}', self._make_layer({blk}, {v[4]}, {nb}[{v[3]}], {v[5]}))"]
    elif stages_kind == 2:
        stages = [f"{v[3]} = list(zip({widths}, {strides}))"] + [
            f"self.layer{i + 1} = self._make_layer({blk}, {v[3]}[{i}][0], {nb}[{i}], {v[3]}[{i}][1])" for i in range(4)]
    else:
        stages = [f"self.layer{i + 1} = self._make_layer({blk}, {w}, {nb}[{i}], stride={st})"
                  for i, (w, st) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2)))]
    fc = pick(f"self.fc = nn.Linear(512 * {blk}.expansion, num_classes)", "self.fc = nn.Linear(512, num_classes)",
              f"self.fc = nn.Linear({track}, num_classes)")
    pool_kind = c.randrange(4)
    pool_init = [pick("self.pool = nn.AdaptiveAvgPool2d(1)", "self.pool = nn.AdaptiveAvgPool2d((1, 1))")] \
        if pool_kind == 0 else []
    init_loop = pick([], [], [f"for {v[2]} in self.modules():", f"    if isinstance({v[2]}, nn.Conv2d):",
                              f"        nn.init.kaiming_normal_({v[2]}.weight, mode='fan_out', nonlinearity='relu')"])
    resnet_init = [sup.format(cls="ResNet"), f"{track} = 64", *stem, *stages, *pool_init, fc, *init_loop]
    if relu_kind == 2:
        resnet_init.append("self.relu = nn.ReLU()")
    make = pick(
        [f"{v[0]} = []", f"for {v[5]} in [stride] + [1] * ({nb} - 1):",
         f"    {v[0]}.append({blk}({track}, planes, {v[5]}))", f"    {track} = planes * {blk}.expansion",
         f"return nn.Sequential(*{v[0]})"],
        [f"{v[0]} = [{blk}({track}, planes, stride)]", f"{track} = planes * {blk}.expansion",
         f"for _ in range(1, {nb}):", f"    {v[0]}.append({blk}({track}, planes, 1))",
         f"return nn.Sequential(*{v[0]})"],
        [f"{v[5]} = [stride] + [1] * ({nb} - 1)", f"{v[0]} = []", f"for {v[4]} in {v[5]}:",
         f"    {v[0]}.append({blk}({track}, planes, {v[4]}))", f"    {track} = planes",
         f"return nn.Sequential(*{v[0]})"],
        [f"{v[0]} = nn.Sequential()", f"for {v[4]} in range({nb}):",
         f"    {v[0]}.add_module(str({v[4]}), {blk}({track}, planes, stride if {v[4]} == 0 else 1))",
         f"    {track} = planes", f"return {v[0]}"],
        [f"{v[0]} = []", f"for {v[4]} in range({nb}):", f"    {v[5]} = stride if {v[4]} == 0 else 1",
         f"    {v[0]}.append({blk}({track}, planes, {v[5]}))", f"    {track} = planes * {blk}.expansion",
         f"return nn.Sequential(*{v[0]})"])
    h = v[1]
    stem_fwd = pick([f"{h} = {relu(f'self.bn1(self.conv1({x}))')}"],
                    [f"{h} = self.bn1(self.conv1({x}))", f"{h} = {relu(h)}"],
                    [f"{h} = self.conv1({x})", f"{h} = self.bn1({h})", f"{h} = {relu(h)}"])
    if stages_kind == 1:
        chain = [f"for {v[3]} in range(1, 5):", f"    {h} = getattr(self, f'layer{{{v[3]}}}')({h})"]
    else:
        chain = pick([f"{h} = self.layer{i}({h})" for i in range(1, 5)],
                     [f"{h} = self.layer4(self.layer3(self.layer2(self.layer1({h}))))"],
                     [f"for {v[3]} in (self.layer1, self.layer2, self.layer3, self.layer4):", f"    {h} = {v[3]}({h})"])
    pool = [f"{h} = self.pool({h})", f"{h} = F.adaptive_avg_pool2d({h}, 1)", f"{h} = F.avg_pool2d({h}, 4)",
            f"{h} = {h}.mean(dim=(2, 3), keepdim=True)"][pool_kind]
    flat = pick(f"{h} = {h}.flatten(1)", f"{h} = torch.flatten({h}, 1)", f"{h} = {h}.view({h}.size(0), -1)",
                f"{h} = {h}.reshape(len({h}), -1)", f"{h} = {h}.view(-1, 512)")
    ret = pick([f"return self.fc({h})"], [f"{v[0]} = self.fc({h})", f"return {v[0]}"])
    resnet_methods = {"__init__": (f"def __init__(self, {blk}, {nb}, num_classes=10):", resnet_init),
                      "_make_layer": (f"def _make_layer(self, {blk}, planes, {nb}, stride):", make),
                      "forward": (f"def forward(self, {x}):", [*stem_fwd, *chain, pool, flat, *ret])}
    r18 = pick(["return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)"],
               ["return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)"],
               [f"{v[0]} = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)", f"return {v[0]}"],
               ["return ResNet(BasicBlock, [2] * 4, num_classes)"])
    expansion = pick(["    expansion = 1"], ["    expansion: int = 1"], ["    expansion = 1  # BasicBlock keeps width"])

    def method(header: str, lines: list[str]) -> list[str]:
        doc = [f'        """{rng.choice(["Build it.", "The forward pass.", "See the handout.", "Set up layers."])}"""']
        return [f"    {header}", *(doc if rng.random() < 0.3 else []), *(f"        {ln}" for ln in lines), ""]

    def klass(name: str, methods: dict, extra: list[str]) -> list[str]:
        order = list(methods)
        rng.shuffle(order)
        out = [f"class {name}(nn.Module):", *extra, ""]
        for m in order:
            out += method(*methods[m])
        return out

    parts = [klass("BasicBlock", block_methods, expansion), klass("ResNet", resnet_methods, []),
             ["def resnet18(num_classes=10):", *(f"    {ln}" for ln in r18), ""]]
    if helper:
        parts.append([f"def conv3x3({v[4]}, {v[5]}, stride=1):",
                      f"    return nn.Conv2d({v[4]}, {v[5]}, kernel_size=3, stride=stride, padding=1, bias=False)",
                      ""])
    rng.shuffle(parts)
    header = [f'"""{rng.choice(["hw6", "ResNet homework", "My solution to hw6.", "CIFAR ResNet"])}"""',
              *rng.sample(["import torch", "import torch.nn as nn", "import torch.nn.functional as F"], 3), "", ""]
    return "\n".join(header + [line for part in parts for line in (*part, "")]) + "\n"


def make_class(folder: Path, n: int, copies: int, seed: int) -> list[tuple[str, str]]:
    """`n` students in folder/<student>/hw6/resnet.py; the last `copies` copy an earlier one. Returns the copies."""
    rng = random.Random(seed)
    structures = [rng.randrange(1 << 30) for _ in range(n - copies)]
    planted = []
    for i in range(n):
        student = f"s{i:04d}"
        if i < n - copies:
            structure = structures[i]
        else:
            source = rng.randrange(n - copies)
            structure = structures[source]
            planted.append((f"s{source:04d}", student))
        folder.joinpath(student, "hw6").mkdir(parents=True)
        folder.joinpath(student, "hw6", "resnet.py").write_text(write(structure, random.Random(rng.random())))
    return planted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--keep", type=Path, help="Write the class here (and keep it).")
    args = parser.parse_args()
    kit = str(Path(sys.executable).with_name("kit"))
    with tempfile.TemporaryDirectory() as scratch:
        root = (args.keep or Path(scratch)).resolve()
        folder = root / "submitted"
        planted = make_class(folder, args.n, args.copies, args.seed)
        (root / "kit.toml").write_text(f'[course]\nsuites = "{REPO / "grader" / "suites"}"\n'
                                       f'assignments = "{REPO / "assignments"}"\n')
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        run = subprocess.run([kit, "similarity", "hw6", str(folder), "--json", "--min", "0.3",
                              "--out", str(root / "report.html")], cwd=root, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if run.returncode not in (0, 1):
            print(run.stderr, file=sys.stderr)
            return 2
        doc = json.loads(run.stdout)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    copies = {tuple(sorted(p)) for p in planted}
    others = [p for p in doc["pairs"] if tuple(p["students"]) not in copies]
    found = [p for p in doc["pairs"] if tuple(p["students"]) in copies]
    print(f"# kit similarity: {args.n} synthetic hw6 submissions\n")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs (usable: {len(os.sched_getaffinity(0))}), "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    print(f"- `kit similarity hw6 DIR --json`: **{seconds:.1f} s** wall, {cpu:.1f} s CPU, start-up and HTML report "
          f"included ({args.n * (args.n - 1) // 2} pairs)")
    scores = ", ".join(f"{p['similarity']:.0%}" for p in found)
    print(f"- planted copies: {len(found)} of {len(planted)} found, similarity {scores}, "
          f"flagged: {sum(p['flagged'] for p in found)}")
    counts = ", ".join(f"{sum(p['similarity'] >= t for p in others)} at {t:.0%}" for t in (0.5, 0.6, 0.7, 0.8))
    print(f"- other pairs (nobody copied) flagged: {sum(p['flagged'] for p in others)} at the default threshold "
          f"({doc['threshold']:.0%}); {counts}")
    if others:
        top = others[0]
        print(f"- most similar pair after the copies: {top['similarity']:.0%} ({' & '.join(top['students'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
