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


# Files whose tests run real processes against the wall clock (torch.distributed ranks that sleep,
# time out or are killed on a timer). `make test` runs everything else on two pytest-xdist
# workers and these afterwards, alone, so a neighbour's load cannot shift their timing.
SERIAL_FILES = ("test_dist_", "test_coordinator")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name.startswith(SERIAL_FILES):
            item.add_marker(pytest.mark.serial)
