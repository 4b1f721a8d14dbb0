"""``wayline report``'s page, rendered by a real browser (Debian's chromium through Playwright):
every plot is drawn with marks in it, the numbers on the page are the report document's, and a
section with no data says so instead of drawing an empty frame."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from warehousetest import insert_docs
from wayline import kpireport
from wayline.connectors.clickhouse import Client
from wayline.kpireport import Period
from wayline.report import render
from wayline.segments.policy import in_holdout

pytestmark = pytest.mark.timeout(240)
CHROMIUM = "/usr/bin/chromium"
START = datetime(2026, 5, 1, tzinfo=UTC)
PERIOD = Period(START, START + timedelta(days=150))
SUBSCRIPTIONS = {"cart-mail": ("email", 0.04), "winback-sms": ("sms", 0.0)}


def event(pid: str, n: int, name: str, at: datetime, **props: Any) -> dict[str, Any]:
    return {"profile_id": pid, "messageId": f"{pid}-{n}", "type": "track", "event": name,
            "timestamp": at.isoformat(), "receivedAt": at.isoformat(),
            "context": {"channel": "web"}, "properties": props}  # fmt: skip


def shop(client: Client, database: str, seed: int = 11) -> None:
    """Six months of a small shop: browsing, carts, orders, two subscriptions with holdouts and
    a control group, e-mail engagement, and two segments."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    transitions: list[dict[str, Any]] = []
    for p in range(3000):
        pid, n = f"p{p:04d}", 0
        first = START + timedelta(days=rng.randint(0, 140), hours=rng.randint(8, 20))
        for visit in range(rng.randint(1, 4)):
            at = first + timedelta(days=21 * visit + rng.randint(0, 6))
            events.append(event(pid, n := n + 1, "Product Viewed", at, product_id="P"))
            if rng.random() < 0.45:
                events.append(event(pid, n := n + 1, "Product Added", at + timedelta(minutes=5)))
                if rng.random() < 0.5:
                    at += timedelta(minutes=20)
                    value = rng.choice([19.0, 45.0, 80.0])
                    events.append(event(pid, n := n + 1, "Order Completed", at,
                                        order_id=f"{pid}-o{n}", revenue=value))  # fmt: skip
        sub = "cart-mail" if p % 2 else "winback-sms"
        kind, lift = SUBSCRIPTIONS[sub]
        sent = first + timedelta(days=rng.randint(0, 5))
        control = in_holdout(pid, "control", 5)
        held = control or in_holdout(pid, sub, 10)
        status = "held_out" if held else "sent"
        reason = "control_group" if control else "holdout" if held else "ok"
        deliveries.append({"profile_id": pid, "delivery_id": f"{pid}-d", "trigger_id": f"{pid}-t",
                           "trigger": "cart_abandoned", "subscription": sub, "channel": sub,
                           "channel_type": kind, "kind": "marketing", "status": status,
                           "final": True, "reason": reason, "attempt": 1,
                           "at": sent.isoformat()})  # fmt: skip
        if rng.random() < 0.08 + (0 if held else lift):
            events.append(event(pid, n := n + 1, "Order Completed", sent + timedelta(days=2),
                                order_id=f"{pid}-x", revenue=45.0))  # fmt: skip
        if not held and kind == "email" and rng.random() < 0.4:
            events.append(event(pid, n := n + 1, "Email Opened", sent + timedelta(hours=3)))
            if rng.random() < 0.3:
                events.append(event(pid, n := n + 1, "Email Link Clicked",
                                    sent + timedelta(hours=4)))  # fmt: skip
        for segment, share in (("vip", 0.2), ("at_risk", 0.35)):
            if rng.random() < share:
                entered = first + timedelta(days=rng.randint(1, 30))
                transitions.append({"profile_id": pid, "id": f"{pid}-{segment}-in",
                                    "segment": segment, "transition": "enter",
                                    "at": entered.isoformat()})  # fmt: skip
                if rng.random() < 0.4:
                    left = entered + timedelta(days=20)
                    transitions.append({"profile_id": pid, "id": f"{pid}-{segment}-out",
                                        "segment": segment, "transition": "exit",
                                        "at": left.isoformat()})  # fmt: skip
    insert_docs(client, database, "events.resolved", events)
    insert_docs(client, database, "deliveries", deliveries)
    records = [{"profile_id": t["profile_id"], "transitions": [t]} for t in transitions]
    insert_docs(client, database, "segments", records)


@pytest.fixture(scope="module")
def browser() -> Any:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(
            "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield launched
        launched.close()


def test_every_plot_renders_with_the_documents_numbers(
    migrated: tuple[Client, str], browser: Any, tmp_path: Path
) -> None:
    client, database = migrated
    shop(client, database)
    doc = kpireport.report(client, database, PERIOD)
    page_path = tmp_path / "report.html"
    page_path.write_text(render(doc), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    for name in ("uplift", "funnel", "retention", "buyers", "segments", "deliveries"):
        plot = page.locator(f"#plot-{name} svg")
        assert plot.count() == 1, name
        box = plot.bounding_box()
        assert box is not None
        assert box["width"] > 600, name
        assert box["height"] > 120, name
        marks = page.locator(f"#plot-{name} svg path, #plot-{name} svg image").count()
        assert marks > 5, name
    text = page.inner_text("body")
    assert f"{doc['orders']['orders']:,}" in text
    assert len(doc["uplift"]["uplift"]) == 3  # all, against the control group; two subscriptions
    for row in doc["uplift"]["uplift"]:
        assert row["subscription"] in text
        assert row["uplift"] is not None
    mail = next(r for r in doc["uplift"]["uplift"] if r["subscription"] == "cart-mail")
    assert f"{100 * mail['uplift']['absolute']:+.2f} pp" in text
    assert doc["deliveries"]["funnel"]["cart-mail"]["opened"] > 0
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert (tmp_path / "report.png").stat().st_size > 50_000
    assert errors == []


def test_an_empty_period_says_so(
    migrated: tuple[Client, str], browser: Any, tmp_path: Path
) -> None:
    client, database = migrated
    doc = kpireport.report(client, database, PERIOD)
    (tmp_path / "empty.html").write_text(render(doc), encoding="utf-8")
    page = browser.new_page()
    page.goto((tmp_path / "empty.html").as_uri())
    assert page.locator(".plot svg").count() == 0
    text = page.inner_text("body")
    assert "No orders in this period." in text
    assert "No subscription reached and held out profiles in this period." in text
