"""Entry point of the child process (started by kit.grader.launch; see this package's docstring)."""
from __future__ import annotations

import argparse
import os

from .startup import defer_dynamo_import


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="child", description=__doc__)
    parser.add_argument("--fds", help="read,write pipe descriptors")
    parser.add_argument("--student", help="the student's .py file")
    parser.add_argument("--helpers", help="the suite's remote.py")
    parser.add_argument("--forbid", action="append", default=[])
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--zygote", type=int, metavar="FD", help="be a fork server on this socket")
    parser.add_argument("--isolate", metavar="JSON", help="how the zygote walls each child off (zygote.Isolation)")
    args = parser.parse_args(argv)
    defer_dynamo_import()
    if args.zygote is not None:
        import socket

        from .device import preload
        from .zygote import Isolation, Zygote

        preload()  # once, before forking: every child's device check finds it done
        isolation = Isolation.parse(args.isolate) if args.isolate else None
        Zygote(socket.socket(fileno=args.zygote), args.scratch, args.helpers, isolation).run()
    else:
        from .runtime import serve

        rfd, wfd = (int(x) for x in args.fds.split(","))
        serve(rfd, wfd, args.student, args.helpers, args.forbid, args.scratch)
    os._exit(0)  # skip interpreter teardown: student objects may misbehave in __del__
