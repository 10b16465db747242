"""Test suites shipped with autotune, for its own strategies and for third-party ones."""
