"""The child process: the only part of kit that runs next to student code.

It is started inside the sandbox as a package of its own (`child`, see kit.grader.launch),
imports nothing from the rest of kit, and speaks wire.py's protocol on two pipes. The grader
imports wire.py too, as kit.grader.child.wire.
"""
