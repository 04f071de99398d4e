"""`%kit check hwN` inside Jupyter, JupyterLab, VS Code or Colab, after `%load_ext kit.cli`.

It checks the notebook the kernel is running, as saved on disk, with `kit check` in a process of
its own, which runs the student's code in the sandboxed child as always: never in the student's
kernel, so what the kernel holds (stale definitions, a patched torch) cannot change a verdict,
and nothing the code does can take the kernel down. The notebook is found from the Jupyter
server's sessions, `__session__` (JupyterLab), `__vsc_ipynb_file__` (VS Code), else ASSIGNMENT.ipynb
in the working folder, unless --path names it. Where there is no file (Colab), the cells the kernel
has run are checked instead, and the report says so. The report is HTML, with the terminal's text
for front ends that show no HTML.
"""
from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import click

USAGE = "usage: %kit check ASSIGNMENT [--path NOTEBOOK] [-v] [-k EXPR] [--hidden] [--json] [--course DIR]"


def load_ipython_extension(ipython) -> None:
    """`%load_ext kit.cli` registers the `%kit` line magic."""

    def kit(line: str) -> None:
        run_magic(ipython, line)

    ipython.register_magic_function(kit, magic_kind="line", magic_name="kit")


def run_magic(ipython, line: str) -> None:
    from IPython.display import display

    try:
        args = shlex.split(line)
    except ValueError as exc:
        return show_error(f"{exc}\n{USAGE}")
    if not args or args[0] != "check":
        return show_error(f"%kit knows one command, check\n{USAGE}")
    from .check import check

    try:
        ctx = check.make_context("%kit check", args[1:])
    except click.exceptions.Exit:  # --help was shown
        return None
    except click.ClickException as exc:
        return show_error(f"{exc.format_message()}\n{USAGE}")
    params = ctx.params
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kit-magic-") as scratch:
        target = params["path"] or find_notebook(ipython, params["assignment"])
        if target is None:
            target, ran = notebook_of_history(ipython, params["assignment"], Path(scratch))
            warnings.append(f"no notebook file found (as in Colab): checked the {ran} cells this kernel has run, "
                            "in the order they ran; \"cell N\" below means the cell that ran as In [N]")
        elif target.suffix == ".ipynb":
            warnings += stale(ipython, target)
        run = subprocess.run(command(params, target), capture_output=True, text=True, cwd=os.getcwd())
    try:
        doc = json.loads(run.stdout) if run.returncode in (0, 1) else None
    except ValueError:
        doc = None
    if doc is None:
        message = run.stderr.strip() or run.stdout.strip() or f"kit check exited with status {run.returncode}"
        return show_error(message[-4000:].removeprefix("Error: "))
    if params["as_json"]:
        print(run.stdout)
        return None
    from kit.grader.report import Report

    report = Report.from_json(doc)
    title = f"{report.assignment}  ({target})"
    display({"text/html": html(report, title, params["verbose"], warnings),
             "text/plain": text(report, target, params["verbose"], warnings)}, raw=True)
    return None


def command(params: dict, target: Path) -> list[str]:
    """`kit check` with the magic's options, as a process of its own, printing JSON."""
    argv = [sys.executable, "-m", "kit.cli", "check", params["assignment"], "--path", str(target), "--json"]
    if params["course_dir"]:
        argv += ["--course", str(params["course_dir"])]
    if params["junit_xml"]:
        argv += ["--junit-xml", str(params["junit_xml"])]
    if params["hidden"]:
        argv.append("--hidden")
    if params["keyword"]:
        argv += ["-k", params["keyword"]]
    return argv


# -- finding the notebook ----------------------------------------------------------------------------

def find_notebook(ipython, assignment: str) -> Path | None:
    """The notebook file this kernel runs, or ASSIGNMENT.ipynb in the working folder; None if neither."""
    here = Path.cwd()
    for found in (server_session(), ipython.user_ns.get("__session__"), ipython.user_ns.get("__vsc_ipynb_file__")):
        if not isinstance(found, (str, Path)) or not str(found).endswith(".ipynb"):
            continue
        path = Path(found).expanduser()
        for candidate in ([path] if path.is_absolute() else [here / path, here / path.name]):
            if candidate.is_file():
                return candidate
    default = here / f"{assignment}.ipynb"
    return default if default.is_file() else None


def server_session() -> Path | None:
    """The notebook of this kernel's session on a running Jupyter server (its REST API on this machine)."""
    try:
        from ipykernel.connect import get_connection_file
        from jupyter_core.paths import jupyter_runtime_dir

        kernel = Path(get_connection_file()).stem.removeprefix("kernel-")
        servers = sorted(Path(jupyter_runtime_dir()).glob("jpserver-*.json"))
        servers += sorted(Path(jupyter_runtime_dir()).glob("nbserver-*.json"))
    except (ImportError, RuntimeError, OSError, AttributeError):
        return None
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # localhost, never through a proxy
    for server in servers:
        try:
            info = json.loads(server.read_text())
            request = urllib.request.Request(info["url"].rstrip("/") + "/api/sessions",
                                             headers={"Authorization": f"token {info.get('token', '')}"})
            with direct.open(request, timeout=2) as response:
                sessions = json.load(response)
            for session in sessions:
                if session.get("kernel", {}).get("id") == kernel:
                    path = session.get("path") or session["notebook"]["path"]
                    return Path(info.get("root_dir") or info["notebook_dir"]) / path
        except (OSError, ValueError, KeyError, TypeError, AttributeError, urllib.error.URLError):
            continue
    return None


def executed(ipython) -> list[str]:
    """What the kernel ran, In [1] onwards, without the cell running now."""
    return list(ipython.history_manager.input_hist_raw[1:-1])


def stale(ipython, path: Path) -> list[str]:
    """A warning when the saved file does not hold the cell run last: it is older than what the kernel ran."""
    from kit.grader.notebook import NotebookError, read_cells

    ran = [source.strip() for source in executed(ipython) if source.strip()]
    if not ran:
        return []
    try:
        saved = {cell.source.strip() for cell in read_cells(path).cells}
    except NotebookError:
        return []  # the check says what is wrong with it
    if ran[-1] in saved:
        return []
    return [f"{path.name} on disk does not hold the cell you ran last: this checks the saved file, so save the "
            "notebook first (Ctrl+S or Cmd+S), then check again"]


def notebook_of_history(ipython, assignment: str, folder: Path) -> tuple[Path, int]:
    """The cells the kernel ran as a notebook in `folder`, cell N being In [N]; and how many there are."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    sources = executed(ipython)
    nb = new_notebook(cells=[new_code_cell(source, execution_count=n) for n, source in enumerate(sources, 1)])
    path = folder / f"{assignment}.ipynb"
    nbformat.write(nb, str(path))
    return path, len(sources)


# -- showing the result ------------------------------------------------------------------------------

def html(report, title: str, verbose: bool, warnings: list[str]) -> str:
    from .report_html import report_html

    return report_html(report, title=title, verbose=verbose, warnings=tuple(warnings))


def text(report, target: Path, verbose: bool, warnings: list[str]) -> str:
    """The terminal's rendering, without colours."""
    from rich.console import Console

    from .output import print_report

    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None, force_terminal=False, force_jupyter=False,
                      highlight=False)
    for warning in warnings:
        console.print(f"warning: {warning}", soft_wrap=True, markup=False)
    print_report(report, submission=target, verbose=verbose, console=console)
    return out.getvalue()


def show_error(message: str) -> None:
    from IPython.display import display

    from kit.grader.child.wire import clean_text

    from .report_html import error_html

    display({"text/html": error_html(message), "text/plain": f"Error: {clean_text(message)}"}, raw=True)
