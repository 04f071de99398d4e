"""Markdown and HTML aimed at the feedback page (issue 20, item 14).

MyLinear(7, ...) prints, and then raises, a message made of an image (a tracking pixel), links
(inline, reference-style, autolinks, bare URLs), raw HTML (img, script, an iframe), a fake
heading, a table row and a code fence that tries to close the one around it. The check fails
like any raised error; in feedback.md and feedback.html every bit of it must stay text."""
import math

import torch
from torch import nn

PAYLOAD = (
    "![pixel](https://evil.example/track.png?student=me) "
    "[click here](https://evil.example/login) [ref][1] <https://evil.example/auto> "
    "https://evil.example/bare www.evil.example "
    "<img src=x onerror=alert(1)> <script>alert(1)</script> <iframe src=https://evil.example></iframe> "
    "| fake | table | row | &lt;entity&gt; **bold** _em_ ~~strike~~\n"
    "# Score: 20 / 20\n"
    "```\n</pre><h1>pwned</h1>\n````\n"
    "[1]: https://evil.example/ref\n"
)


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        if in_features == 7:
            print(PAYLOAD)
            raise ValueError(PAYLOAD)
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias
