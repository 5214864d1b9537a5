"""Fixtures shared by the test files."""
import pytest


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test, restored afterwards: tiny models on a shared
    2-core machine run far faster so (lgc/threads.py). A file opts in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    from lgc.threads import torch_threads

    with torch_threads(1):
        yield
