import pytest


@pytest.fixture(scope="session")
def board_root(tmp_path_factory):
    """One emulated board root per worker: the .mpy build is made once and reused by
    every replay (each replay rewrites config.json and clears nvs.json and data/, the
    state an earlier replay left: emulate.clear_board_state)."""
    return tmp_path_factory.mktemp("replay-board")
