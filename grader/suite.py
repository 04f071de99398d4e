"""What a suite file imports: proxies, fetching, comparisons, memoised references. See docs/authoring.md."""
from .compare import assert_close, fail
from .reference import reference
from .remote import CheckFailed, Proxy, StudentException, fetch, run, student_raises

__all__ = ["CheckFailed", "Proxy", "StudentException", "assert_close", "fail", "fetch", "reference", "run",
           "student_raises"]
