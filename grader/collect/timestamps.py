"""When a submission was handed in, and who says so.

The time is never read from inside what the student sent (member dates of their zip, a
`timestamp.txt` they packed): only from records the LMS or the course keeps. Each time
comes with its source, one of the `FROM_*` labels, which the collect report shows.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ..files import TIMESTAMP_FILE
from .archives import Rejected, open_regular

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"  # what nbgrader writes

FROM_FILE_NAME = "file name"  # the pattern's `timestamp` group, in the name the LMS gave the download
FROM_DOWNLOAD = "download time"  # the downloaded file's modification time on disk: when it arrived
FROM_DOWNLOAD_ALL = "download-all zip"  # the date the LMS gave the archive's entry in its "download all" zip
FROM_NBGRADER = "nbgrader timestamp.txt"  # written by nbgrader's exchange when the student submitted


def parse_timestamp(text: str) -> datetime | None:
    """A submission time from nbgrader's timestamp.txt, an ISO time, an LMS file-name stamp or an epoch.

    Returns a naive datetime in UTC (what nbgrader stores), or None if `text` is none of these.
    A time without a zone is taken as UTC.
    """
    t = text.strip()
    if not t:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", t):
        return datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None)
    iso = re.sub(r"\s*(UTC|GMT|Z)$", "+00:00", t)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        dt = None
        for fmt in ("%Y-%m-%d-%H-%M-%S", "%Y-%m-%d_%H-%M-%S", "%Y-%m-%dT%H-%M-%S", "%Y%m%d%H%M%S",
                    "%Y%m%d-%H%M%S", "%Y%m%d_%H%M%S", "%Y-%m-%d-%H%M%S", "%Y-%m-%d-%H-%M"):
            try:
                dt = datetime.strptime(t, fmt)
                break
            except ValueError:
                continue
        if dt is None:
            return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def format_timestamp(dt: datetime) -> str:
    return dt.strftime(TIMESTAMP_FORMAT)


def read_timestamp(folder: Path) -> datetime | None:
    """The time in `folder/timestamp.txt` (nbgrader's), if there is a readable one.

    Only a small regular file is read: a link, a named pipe or a device there gives None, never a hang.
    """
    try:
        with open_regular(folder / TIMESTAMP_FILE) as f:
            text = f.read(201)
    except (Rejected, OSError):
        return None
    return None if len(text) > 200 else parse_timestamp(text.decode(errors="replace"))


def download_time(path: Path) -> datetime | None:
    """When the file at `path` arrived: its modification time (a browser or unzip sets it), in UTC."""
    try:
        return datetime.fromtimestamp(path.lstat().st_mtime, UTC).replace(tzinfo=None)
    except (OSError, OverflowError, ValueError):
        return None
