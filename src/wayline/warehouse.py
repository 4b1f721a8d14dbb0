"""This process's one handle on ClickHouse, shared by the analytics sink and the API.

The embedded engine (chdb) admits one process per data path and one data path per process, so
exactly one Wayline process opens it: the one that runs the ``analytics`` worker (it holds the
data directory's ``clickhouse`` lock), and that process's API answers ``/v1/analytics`` for
everyone — ``wayline report`` asks it over HTTP. With ``WAYLINE_CLICKHOUSE_URL`` any process
may connect to the server.

The connection is opened on first use and migrated then (the numbered migrations, each once),
so a ClickHouse that is down at start-up delays analytics and nothing else: the sink's batch is
retried with backoff until it answers.
"""

from __future__ import annotations

import logging
import threading

from wayline.connectors.clickhouse import ClickHouseError, SharedClient, connect, migrate
from wayline.schemas.errors import RetryableError
from wayline.settings import Settings

log = logging.getLogger(__name__)
DATABASE = "wayline"


class Warehouse:
    def __init__(self, settings: Settings, database: str = DATABASE) -> None:
        self.url = settings.clickhouse_url
        self.data_dir = settings.data_dir
        self.database = database
        self._client: SharedClient | None = None
        self._opening = threading.Lock()

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def where(self) -> str:
        return self.url or f"the embedded engine in {self.data_dir / 'clickhouse'}"

    def client(self) -> SharedClient:
        """Connected, with every migration applied; ``RetryableError`` while ClickHouse cannot
        be reached."""
        with self._opening:
            if self._client is None:
                try:
                    client = connect(self.url, self.data_dir, self.database)
                    applied = migrate(client, self.database)
                except (ClickHouseError, OSError) as exc:
                    raise RetryableError(f"ClickHouse ({self.where}): {exc}") from exc
                log.info("analytics: %s, database %s, %d migrations applied now",
                         self.where, self.database, len(applied))  # fmt: skip
                self._client = SharedClient(client)
            return self._client
