"""Chaos: the metadata store goes away (here: the TCP path to Postgres is cut, like a
restart) while the server answers. Keys checked recently keep working from the cache, an
unknown key gets a 503 naming the cause (it was a 500 once the 5 s key cache expired), and
everything heals when the database is back."""

from __future__ import annotations

import asyncio
import time

import pytest

from loopml.errors import AuthError, UnavailableError
from loopml.serve.access.auth import Authenticator
from loopml.store import Store
from tests.serve.serve_helpers import Cuttable

pytestmark = pytest.mark.anyio


async def test_keys_keep_working_while_the_store_is_down(pg_url):
    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    relay = Cuttable((url.host or "127.0.0.1", url.port or 5432))
    store = Store(url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
    key, rec = store.keys.create("predictor", actor="test")
    other, _ = store.keys.create("predictor", actor="test")
    auth = Authenticator(store.keys.authenticate, ttl=0.1, stale_grace=60)
    assert (await auth.acheck(f"Bearer {key}", "predictor")).prefix == rec["prefix"]
    relay.cut()
    await asyncio.sleep(0.3)  # past the cache's ttl: the next check asks the store
    t0 = time.monotonic()
    for _ in range(5):
        assert (await auth.acheck(f"Bearer {key}", "predictor")).prefix == rec["prefix"]
    with pytest.raises(UnavailableError, match="cannot be reached") as err:
        await auth.acheck(f"Bearer {other}", "predictor")  # never seen: cannot be verified
    assert err.value.http_status == 503
    assert time.monotonic() - t0 < 30
    relay.restore()
    store.keys.revoke(rec["id"], actor="test")
    await asyncio.sleep(0.3)
    with pytest.raises(AuthError):
        await auth.acheck(f"Bearer {key}", "predictor")  # back: the revocation holds
    assert (await auth.acheck(f"Bearer {other}", "predictor")).role == "predictor"
    store.close()
