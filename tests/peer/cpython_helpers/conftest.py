"""CPython's test modules live here verbatim; they are run by
``tests/peer/test_cpython_helpers.py``, not collected on their own."""

collect_ignore = ["lock_tests.py", "test_queue.py"]
