"""Terminal escapes aimed at the instructor's screen (issue 20, item 12).

Importing this file prints, and then raises, text full of control sequences: clear the screen,
move the cursor home, a fake green "score: 20 / 20", set the window title (OSC), the 8-bit CSI
(\x9b), carriage returns that overwrite a line, a bell. The raise statement below holds raw
ESC bytes too, so the traceback's source line carries them. Whoever shows this text (`kit check
-v`, `kit grade -v`, feedback) must show it inert: no ESC, CSI or carriage return reaches a
terminal. The import fails, so every check fails: 0 points, as for any import error."""
import os
import sys

FAKE = ("\x1b[2J\x1b[H\x1b[1;32mscore: 20 / 20 (all checks passed)\x1b[0m\x1b]0;graded\x07"
        "\x9b2J\r20 passed in 0.01s\x1b[8m")
print(FAKE)
sys.stdout.flush()
os.write(2, FAKE.encode())
raise ImportError(FAKE + "[2J[H")  # raw ESC bytes on this line: [1;32mall passed[0m
