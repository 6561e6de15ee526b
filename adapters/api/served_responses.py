"""Which responses this gateway served itself, so `previous_response_id` can be honoured for them alone.

`previous_response_id` asks the provider to prepend a stored conversation
ghat never sees. ghat can only stand behind that conversation when every turn
of it went through ghat: its inputs passed the input guards before the
provider stored them, its answers came from the provider itself. So the
gateway remembers the ids of the Responses it served natively from a
provider that stores them (kind openai, `store` not false), with the app they
were served to and the provider that holds them. A follow-up naming one of
those ids, from the same app, is routed to that provider only; any other id
— unknown, another app's, one that expired here, or a provider that keeps no
state — is refused with 400 naming the field (never forwarded).

The memory is per server process and bounded (`MAX_IDS`, oldest dropped, and
`TTL_S`): with several workers or after a restart a follow-up may be refused,
which is safe (the client sends the whole history in `input` instead); it is
never honoured for an id ghat did not serve.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_IDS = 100_000
TTL_S = 24 * 3600.0


class ServedResponses:
    """Response id → (app, provider, when), bounded, oldest first."""

    def __init__(self, max_ids: int = MAX_IDS, ttl_s: float = TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._ids: OrderedDict[str, tuple[str, str, float]] = OrderedDict()
        self._max, self._ttl, self._clock = max_ids, ttl_s, clock

    def remember(self, response_id: str, app: str, provider: str) -> None:
        """Record a response served natively to `app` by `provider`, which stores it."""
        self._ids[response_id] = (app, provider, self._clock())
        self._ids.move_to_end(response_id)
        while len(self._ids) > self._max:
            self._ids.popitem(last=False)

    def provider_of(self, response_id: str, app: str) -> str | None:
        """The provider holding `response_id` when this gateway served it to `app` (and it has not expired)."""
        found = self._ids.get(response_id)
        if found is None or found[0] != app:
            return None
        if self._clock() - found[2] > self._ttl:
            del self._ids[response_id]
            return None
        return found[1]
