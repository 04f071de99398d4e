"""`%kit check` in a real Jupyter kernel (ipykernel, run by nbclient), on a notebook released by kit.

The notebook is the handout of `kit release hw1 --notebook --out DIR`, its code cells filled in, and
it is executed top to bottom as a student would run it: its last cell is `%load_ext kit.cli` and
`%kit check hw1`. The report must be the one `kit check` gives, as HTML and as text.
"""
from __future__ import annotations

import html
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbclient import NotebookClient

from kit.grader.release import code_sections, write_bundle
from tests.conftest import ROOT
from tests.conftest import grade as grade_folder

SOLUTION = (ROOT / "solutions" / "hw1" / "my_linear.py").read_text()
BIAS_IGNORED = (ROOT / "tests" / "submissions" / "hw1" / "bias_ignored" / "my_linear.py").read_text()


@pytest.fixture(scope="module")
def bundle(course, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    write_bundle(course, course.assignment("hw1"), out, notebook=True)
    return out


@pytest.fixture(scope="module")
def public_score(course, bundle, tmp_path_factory) -> dict[str, tuple[float, float]]:
    """What `kit check` gives the solution and the wrong twin from their .py files (public checks)."""
    spec = course.assignment("hw1")
    scores = {}
    for name, source in (("solution", SOLUTION), ("bias_ignored", BIAS_IGNORED)):
        folder = tmp_path_factory.mktemp(name)
        (folder / spec.file).write_text(source)
        report = grade_folder(spec, folder, hidden=False)
        scores[name] = (report.score, report.max_score)
    return scores


def filled(bundle: Path, source: str, *, extra: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """The released notebook with its code cells holding `source` (and `extra` cells before the last one)."""
    nb = nbformat.read(bundle / "hw1" / "hw1.ipynb", as_version=4)
    sections = dict(code_sections(source))
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.id in sections:
            cell.source = sections[cell.id]
    nb.cells[-1:-1] = [nbformat.v4.new_code_cell(text) for text in extra]
    return nb


def run(nb: nbformat.NotebookNode, cwd: Path, *, env: dict | None = None) -> nbformat.NotebookNode:
    """Execute every cell in a fresh kernel whose working folder is `cwd`, like a student would."""
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute(
        env={**os.environ, **(env or {})})
    return nb


def shown(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """(HTML, text) that the last cell displayed."""
    outputs = [o for o in nb.cells[-1].outputs if o.output_type == "display_data"]
    assert len(outputs) == 1, nb.cells[-1].outputs
    return outputs[0].data["text/html"], outputs[0].data["text/plain"]


def test_a_correct_notebook_checks_in_its_kernel(bundle, public_score):
    path = bundle / "hw1" / "hw1.ipynb"
    nb = filled(bundle, SOLUTION)
    nbformat.write(nb, str(path))  # saved, then run
    page, text = shown(run(nb, path.parent))
    score, top = public_score["solution"]
    assert score == top > 0
    assert f"score: {score:g} / {top:g}" in page and f"score: {score:g} / {top:g}" in text
    assert 'class="kit-checks"' in page and "<code>forward</code>" in page and "✗" not in page
    assert f"hw1  ({path})" in text and "✓ │ forward" in text
    assert "kit-warning\">" not in page and "warning" not in text  # the file holds what ran


def test_a_wrong_notebook_shows_what_differs_and_where(bundle, public_score, tmp_path):
    work = tmp_path / "hw1"
    work.mkdir()
    page, text = shown(run_in_bundle(filled(bundle, BIAS_IGNORED), bundle, work))
    score, top = public_score["bias_ignored"]
    assert score < top
    assert f"score: {score:g} / {top:g}" in page and f"score: {score:g} / {top:g}" in text
    assert "likely cause: the bias is not added" in html.unescape(page) and "the bias is not added" in text
    assert '<tr class="failed">' in page


def run_in_bundle(nb, bundle: Path, work: Path) -> nbformat.NotebookNode:
    """Run in `work`, checking against the bundle's course."""
    nb.cells[-1].source = f"%load_ext kit.cli\n%kit check hw1 --course {bundle}"
    nbformat.write(nb, str(work / "hw1.ipynb"))
    return run(nb, work)


def test_the_kernels_state_cannot_fool_the_check(bundle, public_score, tmp_path):
    """A kernel that patched torch to agree with everything still gets the wrong notebook's score."""
    work = tmp_path / "hw1"
    work.mkdir()
    patch = "import torch\ntorch.allclose = lambda *a, **k: True\ntorch.testing.assert_close = lambda *a, **k: None"
    nb = filled(bundle, BIAS_IGNORED, extra=(patch,))
    page, _ = shown(run_in_bundle(nb, bundle, work))
    score, top = public_score["bias_ignored"]
    assert f"score: {score:g} / {top:g}" in page


def test_an_unsaved_notebook_is_said_to_be_older_than_what_ran(bundle, tmp_path):
    work = tmp_path / "hw1"
    work.mkdir()
    nb = filled(bundle, SOLUTION)
    run_in_bundle(nb, bundle, work)  # writes the file; the kernel then runs a cell the file does not have
    nb.cells[-1:-1] = [nbformat.v4.new_code_cell("EXTRA = 1  # typed after the last save")]
    page, text = shown(run(nb, work))
    assert "does not hold the cell you ran last" in page and "save the notebook first" in text


def test_without_a_notebook_file_the_executed_cells_are_checked(bundle, public_score, tmp_path):
    """Colab: no file anywhere. The cells the kernel ran are checked, and the report says so."""
    nb = filled(bundle, SOLUTION)
    nb.cells[-1].source = f"%load_ext kit.cli\n%kit check hw1 --course {bundle}"
    page, text = shown(run(nb, tmp_path))  # no hw1.ipynb in the working folder, no session
    score, top = public_score["solution"]
    assert f"score: {score:g} / {top:g}" in page
    assert "no notebook file found" in page and "the cell that ran as In [N]" in html.unescape(page)
    assert "no notebook file found" in text


def test_jupyterlabs_session_names_the_notebook(bundle, public_score, tmp_path):
    """JupyterLab starts the kernel with JPY_SESSION_NAME (ipykernel's __session__): a notebook of any name."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    nb = filled(bundle, BIAS_IGNORED)
    nb.cells[-1].source = f"%load_ext kit.cli\n%kit check hw1 --course {bundle}"
    path = work / "Copy of hw1.ipynb"
    nbformat.write(nb, str(path))
    page, text = shown(run(nb, tmp_path, env={"JPY_SESSION_NAME": str(path)}))
    score, top = public_score["bias_ignored"]
    assert f"score: {score:g} / {top:g}" in page and str(path) in text


def test_vs_codes_variable_names_the_notebook(bundle, public_score, tmp_path):
    nb = filled(bundle, SOLUTION)
    path = tmp_path / "mine.ipynb"
    nb.cells[-1].source = f"%load_ext kit.cli\n%kit check hw1 --course {bundle}"
    nb.cells[-1:-1] = [nbformat.v4.new_code_cell(f"__vsc_ipynb_file__ = {str(path)!r}")]
    nbformat.write(nb, str(path))
    page, text = shown(run(nb, tmp_path))
    score, top = public_score["solution"]
    assert f"score: {score:g} / {top:g}" in page and str(path) in text


def test_usage_and_setup_errors_are_shown_not_raised(bundle, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"%load_ext kit.cli\n%kit check hw99 --course {bundle}"), nbformat.v4.new_code_cell("%kit grade hw1"),
        nbformat.v4.new_code_cell("%kit check hw1 --bogus")])
    run(nb, tmp_path)
    texts = [next(o for o in cell.outputs if o.output_type == "display_data").data["text/plain"] for cell in nb.cells]
    assert "no assignment 'hw99'" in texts[0]
    assert "%kit knows one command, check" in texts[1]
    assert "No such option" in texts[2] and "--bogus" in texts[2]


def test_a_jupyter_servers_session_names_the_notebook(bundle, public_score, tmp_path):
    """The kernel a Jupyter server started for a notebook finds it through the server's sessions."""
    root, runtime = tmp_path / "root", tmp_path / "runtime"
    (root / "work").mkdir(parents=True)
    nbformat.write(filled(bundle, BIAS_IGNORED), str(root / "work" / "attempt 2.ipynb"))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--ServerApp.port={port}",
                               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=t0k",
                               f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--allow-root"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(api + path, method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"Authorization": "token t0k", "Content-Type": "application/json"})
        with direct.open(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                call("GET", "/status")
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the Jupyter server did not start"
                time.sleep(0.5)
        session = call("POST", "/sessions", {"path": "work/attempt 2.ipynb", "type": "notebook",
                                             "kernel": {"name": "python3"}})
        client = BlockingKernelClient(connection_file=str(runtime / f"kernel-{session['kernel']['id']}.json"))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=180)
            outputs = []
            reply = client.execute_interactive(
                f"globals().pop('__session__', None)\n%load_ext kit.cli\n%kit check hw1 --course {bundle}",
                timeout=300, output_hook=lambda msg: outputs.append(msg))
        finally:
            client.stop_channels()
            call("DELETE", f"/sessions/{session['id']}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert reply["content"]["status"] == "ok", reply["content"]
    shown_text = [m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "display_data"]
    score, top = public_score["bias_ignored"]
    assert len(shown_text) == 1 and f"score: {score:g} / {top:g}" in shown_text[0]
    assert str(root / "work" / "attempt 2.ipynb") in shown_text[0]
