"""Shared pytest plugins: each team's fixtures live in their own module, listed here."""

pytest_plugins = [
    "tests.fixtures_upstream",
    "tests.fixtures_redis",
    "tests.fixtures_env",
]
