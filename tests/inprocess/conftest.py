"""The in-process tier: the /copilot handlers driven through Flask-SocketIO's test client, with no network and no
server process (threading mode). Run it alone with `pytest tests/inprocess` or `pytest -m inprocess`."""
import pytest

from tests.conftest import TEST_SECRET


def pytest_configure(config):
    config.addinivalue_line("markers", "inprocess: fast tests of the handlers in the test process, no network")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app as create_app builds it, in this process: threading, since gevent has not patched it."""
    from copilot import create_app
    from copilot.settings import Settings

    return create_app(Settings(instance_dir=tmp_path_factory.mktemp("inprocess") / "instance", secret=TEST_SECRET,
                               async_mode="threading", cooldown_s=0))
