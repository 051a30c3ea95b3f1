"""The version page shows the model card rendered as HTML by the same renderer as
``loopml report`` (not raw Markdown), with the project's target and sensitive attributes."""

from __future__ import annotations

import html

import httpx
import pytest

from loopml.config import load_config
from loopml.evaluate.documents.version_report import render_stored
from loopml.store import Store
from loopml.ui import create_ui

pytestmark = pytest.mark.anyio


async def test_the_version_page_embeds_the_report_card(world):
    root, info = world
    cfg = load_config(root)
    store = Store(cfg.store_url)
    try:
        report = render_stored(store, cfg, info["v2"])
        app = create_ui(cfg, store, auth=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ui"
        ) as c:
            page = (await c.get(f"/versions/{info['v2']}", headers={"accept": "text/html"})).text
    finally:
        store.close()
    start = page.index('srcdoc="') + len('srcdoc="')
    card = html.unescape(page[start : page.index('"', start)])
    assert card == report  # the very page `loopml report` writes
    # guards against the card built without the config: "Target -; none declared"
    assert "Target <code>label</code>; sensitive attributes: sex, group." in card
    assert '<pre class="card-md">' not in page and "|---|" not in page
