"""The unifex conformance suite: one behaviour per file, run for every
registered kind. Shipped in the wheel as ``unifex.testing.conformance`` so a
third-party backend can run it: ``pytest --pyargs unifex.testing.conformance
--unifex-kinds mykind``."""
