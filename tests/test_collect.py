"""`kit collect`: nbgrader layouts and LMS zips in, `submitted/<student>/hwN/` out; hostile archives rejected."""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.grader.collect import ArchiveLimits, collect, read_timestamp
from kit.grader.collect.archives import Rejected, extract_zip, open_regular, safe_parts
from kit.grader.collect.report import COLLECTED, IGNORED, KEPT, REJECTED, SUPERSEDED
from kit.grader.collect.timestamps import (
    FROM_DOWNLOAD,
    FROM_DOWNLOAD_ALL,
    FROM_FILE_NAME,
    FROM_NBGRADER,
    parse_timestamp,
)
from tests.conftest import ROOT

FILE = "my_linear.py"
GOOD = "class MyLinear:\n    pass\n"
KIT = [str(Path(sys.executable).with_name("kit"))]


def make_zip(path: Path, members: dict[str, bytes | str], *, date=(2024, 1, 15, 10, 0, 0),
             links: dict[str, str] | None = None, modes: dict[str, int] | None = None,
             compression=zipfile.ZIP_DEFLATED, arrived: datetime | None = None) -> Path:
    """A zip whose members all claim `date`; `modes` gives some a file type (stat.S_IFIFO...), `arrived` its mtime."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=date)
            info.compress_type = compression
            info.external_attr = ((modes or {}).get(name, stat.S_IFREG) | 0o644) << 16
            zf.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name, date_time=date)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    if arrived is not None:
        arrive(path, arrived)
    return path


def arrive(path: Path, when: datetime) -> Path:
    """Give `path` the modification time a download at `when` (UTC) would have."""
    t = when.replace(tzinfo=UTC).timestamp()
    os.utime(path, (t, t))
    return path


def entries(report) -> dict[str, object]:
    return {e.source: e for e in report.entries}


def run_collect(tmp_path: Path, source: Path, **kwargs):
    dest = tmp_path / "submitted"
    return collect("hw1", FILE, source, dest, **kwargs), dest


# -- names and times ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x.py", "a/../../x.py", "/etc/passwd", "C:/x.py", "C:\\x.py", "..\\x.py",
                                  "a\x00b", "a\nb"])
def test_unsafe_member_names_are_rejected(name):
    with pytest.raises(Rejected):
        safe_parts(name)


def test_safe_member_names_are_split():
    assert safe_parts("hw1/./sub//my_linear.py") == ["hw1", "sub", "my_linear.py"]
    assert safe_parts("hw1\\my_linear.py") == ["hw1", "my_linear.py"]


@pytest.mark.parametrize("text,expected", [
    ("2024-01-15 10:30:00.123456 UTC", datetime(2024, 1, 15, 10, 30, 0, 123456)),
    ("2024-01-15T11:30:00+01:00", datetime(2024, 1, 15, 10, 30)),
    ("2024-01-15-10-30-00", datetime(2024, 1, 15, 10, 30)),
    ("20240115103000", datetime(2024, 1, 15, 10, 30)),
    ("1705314600", datetime(2024, 1, 15, 10, 30)),
    ("yesterday", None),
])
def test_timestamps_in_the_usual_spellings(text, expected):
    assert parse_timestamp(text) == expected


# -- nbgrader layout ------------------------------------------------------------------------------------

def test_nbgrader_layout_is_copied_with_its_timestamp(tmp_path):
    src = tmp_path / "exchange"
    for student in ("alice", "bob"):
        folder = src / student / "hw1"
        folder.mkdir(parents=True)
        (folder / FILE).write_text(GOOD + f"# {student}\n")
        (folder / "timestamp.txt").write_text("2024-01-15 10:30:00.000000 UTC\n")
    (src / "carol" / "hw2").mkdir(parents=True)  # submitted something else only
    (src / "bob" / "hw1" / "__pycache__").mkdir()
    (src / "bob" / "hw1" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    report, dest = run_collect(tmp_path, src)
    assert (dest / "alice" / "hw1" / FILE).read_text() == GOOD + "# alice\n"
    assert read_timestamp(dest / "bob" / "hw1") == datetime(2024, 1, 15, 10, 30)
    assert not (dest / "bob" / "hw1" / "__pycache__").exists()
    e = entries(report)
    assert e["alice/hw1"].status == COLLECTED and not e["alice/hw1"].odd
    assert e["alice/hw1"].timestamp_source == FROM_NBGRADER
    assert e["carol/hw1"].status == IGNORED
    assert e["bob/hw1"].odd  # junk skipped, and said so


def test_a_folder_nobody_timed_is_collected_and_flagged_never_silently_on_time(tmp_path):
    src = tmp_path / "exchange"
    folder = src / "uma" / "hw1"
    folder.mkdir(parents=True)
    (folder / FILE).write_text(GOOD)
    (folder / "timestamp.txt").write_text("whenever I like\n")  # not a time: nobody recorded one
    report, dest = run_collect(tmp_path, src)
    e = entries(report)["uma/hw1"]
    assert e.status == COLLECTED and e.odd and not report.clean
    assert e.timestamp is None and e.timestamp_source is None
    assert any(r.startswith("no submission time") for r in e.reasons), e.reasons
    assert (dest / "uma" / "hw1" / FILE).exists()
    assert not (dest / "uma" / "hw1" / "timestamp.txt").exists()


def test_nbgrader_layout_link_outside_rejects_the_submission(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the answers")
    src = tmp_path / "exchange"
    folder = src / "eve" / "hw1"
    folder.mkdir(parents=True)
    (folder / FILE).write_text(GOOD)
    (folder / "answers.txt").symlink_to(secret)
    ok = src / "dan" / "hw1"
    ok.mkdir(parents=True)
    (ok / FILE).write_text(GOOD)
    (ok / "alias.py").symlink_to(ok / FILE)  # a link inside: skipped, not followed
    report, dest = run_collect(tmp_path, src)
    e = entries(report)
    assert e["eve/hw1"].status == REJECTED and "outside" in e["eve/hw1"].reasons[0]
    assert not (dest / "eve").exists()
    assert e["dan/hw1"].status == COLLECTED and e["dan/hw1"].odd
    assert not (dest / "dan" / "hw1" / "alias.py").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_a_student_folder_that_is_a_link_is_rejected(tmp_path):
    src = tmp_path / "exchange"
    real = tmp_path / "elsewhere" / "hw1"
    real.mkdir(parents=True)
    (real / FILE).write_text(GOOD)
    src.mkdir()
    (src / "ann").mkdir()
    (src / "ann" / "hw1").symlink_to(real)
    report, dest = run_collect(tmp_path, src, layout="nbgrader")
    assert entries(report)["ann/hw1"].status == REJECTED
    assert not (dest / "ann").exists()


# -- LMS zips -------------------------------------------------------------------------------------------

def test_zips_with_the_default_pattern_and_a_wrapping_folder(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "alice_hw1.zip", {"hw1/my_linear.py": GOOD, "hw1/notes.txt": "hi", "__MACOSX/._x": "junk"})
    make_zip(src / "bob.zip", {FILE: GOOD}, arrived=datetime(2024, 1, 16, 8, 30))
    report, dest = run_collect(tmp_path, src)
    assert read_timestamp(dest / "bob" / "hw1") == datetime(2024, 1, 16, 8, 30)
    assert entries(report)["bob.zip"].timestamp_source == FROM_DOWNLOAD
    assert (dest / "alice" / "hw1" / FILE).read_text() == GOOD
    assert (dest / "alice" / "hw1" / "notes.txt").exists()
    assert not (dest / "alice" / "hw1" / "__MACOSX").exists()
    assert (dest / "bob" / "hw1" / FILE).read_text() == GOOD
    assert {e.status for e in report.entries} == {COLLECTED}


def test_the_graded_file_deep_inside_is_found(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "cat.zip", {"project/src/my_linear.py": GOOD, "project/README.md": "x"})
    report, dest = run_collect(tmp_path, src)
    assert (dest / "cat" / "hw1" / FILE).read_text() == GOOD
    assert entries(report)["cat.zip"].odd and "src" in entries(report)["cat.zip"].reasons[0]


def test_custom_pattern_with_timestamps_keeps_the_newest(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    pattern = r"^hw1_(?P<student>[a-z0-9]+)_attempt_(?P<timestamp>[\d-]+)"
    make_zip(src / "hw1_dora_attempt_2024-01-15-10-00-00.zip", {FILE: GOOD + "# old\n"})
    make_zip(src / "hw1_dora_attempt_2024-01-16-09-00-00.zip", {FILE: GOOD + "# new\n"})
    make_zip(src / "hw1_ed_attempt_2024-01-15-10-00-00.zip", {FILE: GOOD})
    (src / "instructions.pdf").write_bytes(b"%PDF")
    report, dest = run_collect(tmp_path, src, pattern=pattern)
    assert (dest / "dora" / "hw1" / FILE).read_text().endswith("# new\n")
    assert read_timestamp(dest / "dora" / "hw1") == datetime(2024, 1, 16, 9)
    e = entries(report)
    assert e["hw1_dora_attempt_2024-01-16-09-00-00.zip"].timestamp_source == FROM_FILE_NAME
    assert e["hw1_dora_attempt_2024-01-15-10-00-00.zip"].status == SUPERSEDED
    assert e["instructions.pdf"].status == REJECTED and "student id" in e["instructions.pdf"].reasons[0]


def test_duplicates_without_time_in_the_name_keep_the_later_download_whatever_the_members_claim(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "fay_first.zip", {FILE: GOOD + "# older\n"}, date=(2024, 3, 1, 12, 0, 0),
             arrived=datetime(2024, 1, 1, 12))
    make_zip(src / "fay_second.zip", {FILE: GOOD + "# newer\n"}, date=(2020, 1, 1, 12, 0, 0),
             arrived=datetime(2024, 2, 1, 12))
    report, dest = run_collect(tmp_path, src)
    assert (dest / "fay" / "hw1" / FILE).read_text().endswith("# newer\n")
    assert read_timestamp(dest / "fay" / "hw1") == datetime(2024, 2, 1, 12)
    assert entries(report)["fay_first.zip"].status == SUPERSEDED


def test_dates_inside_a_late_archive_are_never_its_submission_time(tmp_path):
    """Members (and a packed timestamp.txt) claiming 2020 change nothing: the LMS's name or the arrival decides."""
    src = tmp_path / "downloads"
    src.mkdir()
    backdated = {FILE: GOOD, "timestamp.txt": "2020-01-01 00:00:00.000000 UTC\n"}
    pattern = r"^(?P<student>[a-z]+)(?:_(?P<timestamp>[\d-]+))?\.zip$"
    make_zip(src / "lea_2024-03-02-23-59-00.zip", backdated, date=(2020, 1, 1, 0, 0, 0),
             arrived=datetime(2024, 3, 9))
    make_zip(src / "max.zip", backdated, date=(2020, 1, 1, 0, 0, 0), arrived=datetime(2024, 3, 5, 14, 0))
    report, dest = run_collect(tmp_path, src, pattern=pattern)
    e = {x.student: x for x in report.entries}
    assert read_timestamp(dest / "lea" / "hw1") == datetime(2024, 3, 2, 23, 59)
    assert e["lea"].timestamp_source == FROM_FILE_NAME
    assert read_timestamp(dest / "max" / "hw1") == datetime(2024, 3, 5, 14, 0)
    assert e["max"].timestamp_source == FROM_DOWNLOAD
    assert e["max"].timestamp == "2024-03-05 14:00:00.000000 UTC"


def test_a_download_all_zip_times_each_archive_by_the_date_the_lms_gave_it(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr(zipfile.ZipInfo(FILE, date_time=(2020, 1, 1, 0, 0, 0)), GOOD)  # the student's own date
    bulk = tmp_path / "bulk.zip"
    with zipfile.ZipFile(bulk, "w") as zf:
        zf.writestr(zipfile.ZipInfo("sam_hw1.zip", date_time=(2024, 3, 3, 9, 15, 0)), inner.getvalue())
    arrive(bulk, datetime(2024, 3, 10))
    report, dest = run_collect(tmp_path, bulk)
    assert read_timestamp(dest / "sam" / "hw1") == datetime(2024, 3, 3, 9, 15)
    assert entries(report)["sam_hw1.zip"].timestamp_source == FROM_DOWNLOAD_ALL


def test_an_older_download_does_not_replace_a_newer_collected_one(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "gus.zip", {FILE: GOOD + "# v2\n"}, arrived=datetime(2024, 3, 1))
    run_collect(tmp_path, src)
    (src / "gus.zip").unlink()
    make_zip(src / "gus.zip", {FILE: GOOD + "# v1\n"}, date=(2024, 4, 1, 0, 0, 0), arrived=datetime(2024, 2, 1))
    report, dest = run_collect(tmp_path, src)
    assert (dest / "gus" / "hw1" / FILE).read_text().endswith("# v2\n")
    assert entries(report)["gus.zip"].status == KEPT


def test_a_loose_copy_of_the_graded_file_is_collected(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    (src / "hal_12345_67890_my_linear.py").write_text(GOOD)
    report, dest = run_collect(tmp_path, src)
    assert (dest / "hal" / "hw1" / FILE).read_text() == GOOD


def test_one_bulk_zip_of_student_zips(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr(FILE, GOOD)
    bulk = make_zip(tmp_path / "bulk.zip", {"submissions/ivy_hw1.zip": inner.getvalue(),
                                            "submissions/jon_hw1.zip": inner.getvalue()})
    report, dest = run_collect(tmp_path, bulk)
    assert (dest / "ivy" / "hw1" / FILE).read_text() == GOOD
    assert (dest / "jon" / "hw1" / FILE).read_text() == GOOD


# -- hostile archives -----------------------------------------------------------------------------------

HOSTILE = {
    "traversal": ({"../../evil.py": "x", FILE: GOOD}, {}, "outside"),
    "absolute": ({"/tmp/evil.py": "x", FILE: GOOD}, {}, "absolute"),
    "backslash_traversal": ({"..\\..\\evil.py": "x", FILE: GOOD}, {}, "outside"),
    "symlink": ({FILE: GOOD}, {"data.txt": "/etc/passwd"}, "link"),
    "symlink_dir_then_write": ({"escape/x.py": "x"}, {"escape": "/tmp"}, "link"),
    "duplicate_names": ({FILE: GOOD, "MY_LINEAR.PY": GOOD}, {}, "two entries"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_rejected_and_nothing_escapes(tmp_path, case):
    members, links, reason = HOSTILE[case]
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "mallory.zip", members, links=links)
    make_zip(src / "nina.zip", {FILE: GOOD})
    report, dest = run_collect(tmp_path, src)
    e = entries(report)
    assert e["mallory.zip"].status == REJECTED
    assert reason in e["mallory.zip"].reasons[0], e["mallory.zip"].reasons
    assert not (dest / "mallory").exists()
    assert e["nina.zip"].status == COLLECTED
    assert not list(tmp_path.rglob("evil.py"))
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert not report.clean
    # no staging folders left behind
    assert sorted(p.name for p in dest.iterdir()) == ["nina"]


def test_zip_bomb_by_declared_size(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {FILE: b"\0" * (3 << 20)})
    with pytest.raises(Rejected, match="zip bomb"):
        extract_zip(bomb, tmp_path / "out", ArchiveLimits(max_total_bytes=1 << 20))


def test_zip_bomb_by_compression_ratio(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"weights.bin": b"\0" * (4 << 20)})
    (tmp_path / "out").mkdir()
    with pytest.raises(Rejected, match="compressed more than"):
        extract_zip(bomb, tmp_path / "out")


def test_zip_bomb_with_a_lying_header(tmp_path):
    """Headers that claim a small size cannot make the unpacker write more (or accept the archive)."""
    data = b"\0" * (2 << 20)
    path = make_zip(tmp_path / "liar.zip", {FILE: data})
    raw = bytearray(path.read_bytes())
    true_size = len(data).to_bytes(4, "little")
    small = (100).to_bytes(4, "little")
    assert raw.count(true_size) == 2  # local header and central directory
    raw = raw.replace(true_size, small)
    path.write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Rejected):
        extract_zip(path, out)
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) <= 100


def test_too_many_files(tmp_path):
    many = make_zip(tmp_path / "many.zip", {f"f{i}.py": "x" for i in range(30)})
    with pytest.raises(Rejected, match="more than 20 files"):
        extract_zip(many, tmp_path / "out", ArchiveLimits(max_files=20))


def test_archive_too_large_and_not_a_zip(tmp_path):
    big = tmp_path / "big.zip"
    make_zip(big, {FILE: os.urandom(3000)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(Rejected, match="larger than"):
        extract_zip(big, tmp_path / "out", ArchiveLimits(max_archive_bytes=1000))
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(Rejected):
        extract_zip(fake, tmp_path / "out2")


def test_encrypted_members_are_rejected(tmp_path):
    path = make_zip(tmp_path / "enc.zip", {FILE: GOOD})
    raw = bytearray(path.read_bytes())
    # set the "encrypted" flag bit in the local header and the central directory entry
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(sig)
        raw[at + offset] |= 0x1
    path.write_bytes(bytes(raw))
    with pytest.raises(Rejected, match="encrypted"):
        extract_zip(path, tmp_path / "out")


def test_unusable_student_ids_are_rejected(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "..zip", {FILE: GOOD})
    make_zip(src / "bad$id_hw1.zip", {FILE: GOOD})
    report, dest = run_collect(tmp_path, src, pattern=r"^(?P<student>[^_]+?)(?:_|\.zip$)")
    e = entries(report)
    assert e["bad$id_hw1.zip"].status == REJECTED and "student id" in e["bad$id_hw1.zip"].reasons[0]
    assert e["..zip"].status == IGNORED  # hidden files are listed, never collected
    assert not (tmp_path / "hw1").exists() and list(dest.iterdir()) == []


# -- special files: a named pipe would hang whoever opens it ---------------------------------------------

@pytest.fixture
def never_blocks():
    """Fails the test, instead of hanging it, if anything blocks opening a pipe."""
    def blocked(*_):
        raise TimeoutError("collect blocked on a special file")
    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def make_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


def test_pipes_and_sockets_in_an_nbgrader_folder_are_skipped_unopened(tmp_path, never_blocks):
    src = tmp_path / "exchange"
    folder = src / "olga" / "hw1"
    (folder / "data").mkdir(parents=True)
    (folder / FILE).write_text(GOOD)
    (folder / "timestamp.txt").write_text("2024-01-15 10:30:00.000000 UTC\n")
    os.mkfifo(folder / "data" / "pipe")
    make_socket(folder / "sock")
    piped = src / "pia" / "hw1"
    piped.mkdir(parents=True)
    (piped / FILE).write_text(GOOD)
    os.mkfifo(piped / "timestamp.txt")  # where nbgrader's time should be
    (src / "quin").mkdir()
    os.mkfifo(src / "quin" / "hw1")  # where the assignment folder should be
    report, dest = run_collect(tmp_path, src, layout="nbgrader")
    e = entries(report)
    assert e["olga/hw1"].status == COLLECTED and e["olga/hw1"].odd
    assert "skipped a named pipe: data/pipe" in e["olga/hw1"].reasons
    assert "skipped a socket: sock" in e["olga/hw1"].reasons
    assert read_timestamp(dest / "olga" / "hw1") == datetime(2024, 1, 15, 10, 30)
    assert sorted(p.name for p in (dest / "olga" / "hw1").rglob("*")) == [FILE, "timestamp.txt"]
    assert e["pia/hw1"].status == COLLECTED and e["pia/hw1"].timestamp is None
    assert "skipped a named pipe: timestamp.txt" in e["pia/hw1"].reasons
    assert any(r.startswith("no submission time") for r in e["pia/hw1"].reasons)
    assert not (dest / "pia" / "hw1" / "timestamp.txt").exists()
    assert e["quin/hw1"].status == REJECTED and "named pipe" in e["quin/hw1"].reasons[0]
    assert not any(stat.S_ISFIFO(p.lstat().st_mode) or p.is_socket() for p in dest.rglob("*"))


def test_a_pipe_among_the_downloads_or_as_the_download_is_not_opened(tmp_path, never_blocks):
    src = tmp_path / "downloads"
    src.mkdir()
    os.mkfifo(src / "rex.zip")
    make_zip(src / "sue.zip", {FILE: GOOD})
    report, dest = run_collect(tmp_path, src)
    e = entries(report)
    assert e["rex.zip"].status == IGNORED and "named pipe" in e["rex.zip"].reasons[0]
    assert e["sue.zip"].status == COLLECTED
    os.mkfifo(tmp_path / "everyone.zip")
    report, _ = run_collect(tmp_path, tmp_path / "everyone.zip")
    assert [(x.status, x.reasons) for x in report.entries] == [(REJECTED, ["a named pipe, not a regular file"])]
    with pytest.raises(Rejected, match="named pipe"):
        open_regular(src / "rex.zip")


def test_a_pipe_inside_an_archive_rejects_it(tmp_path):
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "tom.zip", {FILE: GOOD, "pipe": ""}, modes={"pipe": stat.S_IFIFO})
    report, dest = run_collect(tmp_path, src)
    e = entries(report)["tom.zip"]
    assert e.status == REJECTED and e.reasons[0] == "entry 'pipe' is a named pipe"
    assert not (dest / "tom").exists()


# -- the command ------------------------------------------------------------------------------------------

def test_kit_collect_command(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "kit.toml").write_text(f'[course]\nname = "t"\nsuites = "{ROOT / "grader" / "suites"}"\n')
    src = tmp_path / "downloads"
    src.mkdir()
    make_zip(src / "kim.zip", {FILE: GOOD})
    ok = subprocess.run([*KIT, "collect", "hw1", str(src), "--json"], cwd=course, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert [(e["status"], e["timestamp_source"]) for e in doc["entries"]] == [("collected", "download time")]
    assert (course / "submitted" / "kim" / "hw1" / FILE).exists()
    make_zip(src / "zed.zip", {"../x.py": "x"})
    bad = subprocess.run([*KIT, "collect", "hw1", str(src)], cwd=course, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "rejected" in bad.stdout and "zed.zip" in bad.stdout
    assert "(download time)" in bad.stdout  # kim's submission time, and whose record it is
    usage = subprocess.run([*KIT, "collect", "hw1", str(src), "--pattern", "(no_group)"], cwd=course,
                           capture_output=True, text=True)
    assert usage.returncode == 2 and "student" in usage.stderr
