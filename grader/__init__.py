"""kit's grading engine: suites, the sandboxed child runner, comparisons, reports."""
