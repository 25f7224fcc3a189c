"""Shared pytest fixtures.

``data`` gives the shared recordings folder. When it is absent the test is skipped with
the reason, except under ``CI=true``, where absence is a failure.
"""

import os

import pytest

from earshot.paths import data_dir

# The adaptation tests' fixtures (factory model, features, a board flash folder), shared by
# test_adapt.py, test_adapt_board.py and test_adapt_cli.py.
pytest_plugins = ["adapt_support"]


@pytest.fixture(scope="session")
def data():
    path = data_dir(required=False)
    if path is None:
        msg = "shared recordings absent: set EARSHOT_DATA (default ../shared/data)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true requires them)")
        pytest.skip(msg)
    return path
