"""Request log storage: where the log lives, the sink interface, SQLite, and the background writer.

The data dir is `--data-dir`, else `$GHAT_DATA_DIR`, else the platform's user
data dir for "ghat"; the log is `<data dir>/logs.sqlite3` and spill files sit
beside it. The server and the CLI both resolve it here, so they agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.logstore.writer import LogWriter

LOG_FILENAME = "logs.sqlite3"


def default_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: the explicit one, else $GHAT_DATA_DIR, else platformdirs' user data dir."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GHAT_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("ghat"))


def default_log_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """`<data dir>/logs.sqlite3`, the data dir resolved as `default_data_dir` does."""
    return default_data_dir(data_dir) / LOG_FILENAME


def open_log_writer(data_dir: str | os.PathLike[str] | None = None, *, max_queue: int = 50_000) -> LogWriter:
    """The server's one call at start-up: a SQLite store in the data dir behind a running writer."""
    from adapters.logstore.sqlite import SQLiteLogStore
    from adapters.logstore.writer import LogWriter

    path = default_log_path(data_dir)
    return LogWriter(SQLiteLogStore(path), path.parent, max_queue=max_queue)

