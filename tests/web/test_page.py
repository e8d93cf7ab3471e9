"""The page in a real Chromium: what a reader sees over a store a collector is filling.

Each test sends its own messages under an app name of its own and opens the page filtered to
it, so the tests share one collector and one browser. The `watched` page fails a test on any
dialog, console error or script error (a hostile message that ran would show up there).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from support.web import Watched, WebStack, line

HOSTILE = (
    "<script>alert('script')</script>",
    "\"><img src=x onerror=alert('img')>",
    "<a href=\"javascript:alert('link')\">click me</a>",
    "\x1b[31mred\x1b[0m \x1b]0;title\x07 terminal escapes",
)


def open_view(watch: Watched, stack: WebStack, **params: Any) -> Any:
    page = watch.page
    page.goto(stack.url + "?" + urlencode(params, doseq=True))
    page.wait_for_selector("body[data-loaded]")
    return page


def reloaded(page: Any, action: Any) -> None:
    """Do `action` and wait until the page has loaded the view it leads to."""
    before = page.evaluate("document.body.dataset.loaded")
    action()
    page.wait_for_function("(before) => document.body.dataset.loaded !== before", arg=before)


def rows(page: Any) -> list[str]:
    return [str(text) for text in page.locator("#rows tr td.msg").all_inner_texts()]


def url_params(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_page_lists_records_newest_first_with_the_histogram_total(
    stack: WebStack, watched: Watched
) -> None:
    stack.send(*[line(f"listed {n}", app="listed", severity=n % 8) for n in range(12)])
    page = open_view(watched, stack, app="listed")
    assert rows(page) == [f"listed {n}" for n in reversed(range(12))]
    assert page.text_content("#total") == "12"
    assert page.locator("#chart canvas").count() == 1
    assert page.locator("#facet-apps button").all_inner_texts() == ["listed"]
    assert page.locator("#facet-apps .count").all_inner_texts() == ["12"]


def test_filters_and_search_narrow_the_results_and_live_in_the_url(
    stack: WebStack, watched: Watched
) -> None:
    stack.send(
        line("disk full on /var", app="narrow", host="db1", severity=3),
        line("disk almost full", app="narrow", host="db2", severity=4),
        line("cpu hot", app="narrow", host="db1", severity=6),
        line("cpu fine", app="narrow", host="db2", severity=7),
    )
    page = open_view(watched, stack, app="narrow")
    assert len(rows(page)) == 4
    reloaded(page, lambda: page.select_option("#severity", "4"))
    assert rows(page) == ["disk almost full", "disk full on /var"]
    assert url_params(page)["severity"] == ["4"]
    page.fill("#q", "full AND var")
    reloaded(page, lambda: page.press("#q", "Enter"))
    assert rows(page) == ["disk full on /var"]
    assert page.text_content("#total") == "1"
    # the view is in the URL: opened again, it shows the same
    page.goto(page.url)
    page.wait_for_selector("body[data-loaded]")
    assert rows(page) == ["disk full on /var"]
    assert page.input_value("#q") == "full AND var"
    # a host of the facets, clicked, filters
    page.fill("#q", "")
    page.select_option("#severity", "")
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 4")
    reloaded(page, lambda: page.click("#facet-hosts button:text-is('db2')"))
    assert url_params(page)["host"] == ["db2"]
    assert rows(page) == ["cpu fine", "disk almost full"]


def test_the_search_box_takes_field_filters_of_the_query_language(
    stack: WebStack, watched: Watched
) -> None:
    stack.send(
        line("payment refused", app="langbox", host="pay1", msgid="PAY", severity=3),
        line("payment done", app="langbox", host="pay1", msgid="PAY", severity=6),
        line("cart shown", app="langbox", host="cart1", msgid="CART", severity=3),
    )
    page = open_view(watched, stack, app="langbox")
    page.fill("#q", "msgid:PAY severity:<=err OR host:cart1")
    reloaded(page, lambda: page.press("#q", "Enter"))
    assert rows(page) == ["cart shown", "payment refused"]
    page.fill("#q", "-host:pay1 OR payment -refused")
    reloaded(page, lambda: page.press("#q", "Enter"))
    assert rows(page) == ["cart shown", "payment done"]


def test_a_bad_search_shows_its_error_and_column_under_the_box(
    stack: WebStack, watched: Watched
) -> None:
    watched.allow_console("status of 400")  # the API's answer to the bad query, as intended
    stack.send(line("anything", app="badsearch"))
    page = open_view(watched, stack, app="badsearch")
    page.fill("#q", "disk AND")
    reloaded(page, lambda: page.press("#q", "Enter"))
    error = page.locator("#q-error")
    assert error.is_visible()
    assert "column 9: expected a word" in str(error.text_content())
    assert rows(page) == []


def test_the_detail_view_shows_the_message_whole(stack: WebStack, watched: Watched) -> None:
    stack.send(
        line("with data", app="detail", sd='[order@32473 id="7" note="a \\"b\\" \\]"]'),
        b"<13>1 2026-01-01T00:00:00Z host detail - - [bad@1 x=1] broken",
    )
    page = open_view(watched, stack, app="detail", range="all")
    page.click("#rows tr:has-text('with data')")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail .field-app_name") == "detail"
    assert page.text_content("#detail .field-severity") == "info (6)"
    sd = page.locator("#detail-sd tr").all_inner_texts()
    assert sd == ["order@32473\tid\t7", 'order@32473\tnote\ta "b" ]']
    assert 'note=\\"a \\\\\\"b\\\\\\" \\\\]\\"' not in str(page.text_content("#detail-raw"))
    assert '[order@32473 id="7" note="a \\\\"b\\\\" \\\\]"]' in str(
        page.text_content("#detail-raw")
    )
    page.click("#close-detail")
    page.click("#rows tr:has-text('broken')")
    page.wait_for_selector("#detail-raw mark")
    assert "column 53" in str(page.text_content("#detail .field-error"))
    assert page.text_content("#detail-raw mark") == "1"


def test_the_live_tail_shows_a_record_sent_after_the_page_opened(
    stack: WebStack, watched: Watched
) -> None:
    stack.send(*[line(f"old {n}", app="tail") for n in range(60)])
    page = open_view(watched, stack, app="tail")
    page.wait_for_selector("#live-state:text-is('on')")
    stack.send(line("arrived later", app="tail"))
    page.wait_for_selector("#rows tr:first-child:has-text('arrived later')")
    page.wait_for_function(
        "() => /^[1-9]|^0\\.[1-9]/.test(document.getElementById('rate').textContent)"
    )
    # scrolled away, the tail pauses and counts what arrives meanwhile
    page.evaluate("document.getElementById('results-box').scrollTop = 400")
    stack.send(line("while away", app="tail"))
    page.wait_for_selector("#new-arrivals:not([hidden])")
    assert str(page.text_content("#new-arrivals")).startswith("1 new")
    assert "while away" not in rows(page)
    page.click("#new-arrivals")
    assert rows(page)[0] == "while away"


def test_hostile_messages_render_as_text_and_run_nothing(stack: WebStack, watched: Watched) -> None:
    stack.send(
        *[line(text, app="hostile") for text in HOSTILE],
        line("host and app", app="<svg/onload=alert(1)>", host="<img/src=x/onerror=alert(2)>"),
        line("in data", app="hostile", sd='[x@1 v="<script>alert(3)</script>"]'),
    )
    page = open_view(watched, stack, app="hostile")
    shown = rows(page)
    for text in HOSTILE[:3]:
        assert text in shown
    assert "\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07 terminal escapes" in shown
    for index in range(len(shown)):
        page.locator("#rows tr").nth(index).click()
        page.wait_for_selector("#detail:not([hidden])")
        page.click("#close-detail")
    page.click("#rows tr:has-text('in data')")
    assert page.text_content("#detail-sd td:nth-child(3)") == "<script>alert(3)</script>"
    page.goto(stack.url + "?" + urlencode({"host": "<img/src=x/onerror=alert(2)>"}))
    page.wait_for_selector("body[data-loaded]")
    assert page.text_content("#rows td.host") == "<img/src=x/onerror=alert(2)>"
    assert page.text_content("#facet-apps button") == "<svg/onload=alert(1)>"
    page.click("#rows tr")
    page.wait_for_timeout(300)  # time for anything injected to run (the fixture fails on it)
    injected = "#results img, #results script, #results svg, #detail img, #detail script, a[href]"
    assert page.locator(injected).count() == 1  # only the page's own download link
    assert page.evaluate("window.__proto__ === Window.prototype")


def test_screenshot_for_the_readme(tmp_path: Path, watched: Watched, docs: Path) -> None:
    """The README's screenshot of a day of made-up traffic (written to docs/web.png with
    SYSLOGKIT_UPDATE_SCREENSHOT=1)."""
    now = time.time()
    events = [
        ("nginx", 6, "GET /api/orders/{n} 200 12ms"),
        ("shop", 6, "order {n} paid: total 42.50 EUR"),
        ("postgres", 4, "slow query took 912ms: SELECT * FROM orders WHERE id = {n}"),
        ("shop", 3, "payment {n} declined by the bank"),
        ("sshd", 5, "Accepted publickey for deploy from 10.0.0.7"),
        ("kernel", 2, "Out of memory: killed process {n} (worker)"),
    ]
    payloads = []
    for n in range(400):
        app, severity, text = events[(n * 7 + n // 13) % len(events)]
        when = now - 86000 + n * 215 + (n % 5) * 31
        host = ("web1", "web2", "db1")[n % 3]
        payloads.append(
            line(text.format(n=4000 + n), app=app, host=host, severity=severity, when=when)
        )
    with WebStack(tmp_path) as own:
        own.send(*payloads)
        page = open_view(watched, own, range="24h")
        page.wait_for_selector("#chart canvas")
        assert page.text_content("#total") == "400"
        docs.mkdir(exist_ok=True)
        page.screenshot(path=str(docs / "web.png"))
        page.goto("about:blank")  # closes the event stream before its server stops
    assert (docs / "web.png").stat().st_size > 10_000


def test_bidi_controls_and_zero_width_characters_show_as_escapes(
    stack: WebStack, watched: Watched
) -> None:
    stack.send(
        line("user=\u202etoor", app="spoof"),
        line("ro\u200bot logged in", app="spoof"),
        line("next\u2028line \u2066isolate\u2069 \ufeffbom", app="spoof"),
    )
    page = open_view(watched, stack, app="spoof")
    assert rows(page) == [
        "next\\u2028line \\u2066isolate\\u2069 \\ufeffbom",
        "ro\\u200bot logged in",
        "user=\\u202etoor",
    ]
    page.click("#rows tr:has-text('toor')")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail .field-msg") == "user=\\u202etoor"


def test_senders_clocks_neither_hide_messages_from_the_tail_nor_break_the_total(
    stack: WebStack, watched: Watched
) -> None:
    page = open_view(watched, stack, app="skew")  # the last 24 h, by the messages' own time
    page.wait_for_selector("#live-state:text-is('on')")
    year = 365.25 * 86400
    stack.send(
        line("dated 2001", app="skew", when=time.time() - 25 * year),
        line("dated 2099", app="skew", when=time.time() + 73 * year),
        line("on time", app="skew"),
    )
    # the tail shows what arrives, whatever its timestamp; the far ones are marked
    page.wait_for_function("() => document.querySelectorAll('#rows tr').length === 3")
    assert rows(page) == ["on time", "dated 2099", "dated 2001"]
    marked = page.locator("#rows tr.skewed td.msg").all_inner_texts()
    assert marked == ["dated 2099", "dated 2001"]
    title = page.locator("#rows tr.skewed .skew").first.get_attribute("title")
    assert title == "clock skew: timestamp 73 y after arrival"
    page.click("#rows tr:has-text('dated 2001')")
    page.wait_for_selector("#detail:not([hidden])")
    assert page.text_content("#detail .field-skew") == "clock skew: timestamp 25 y before arrival"
    # the view by the messages' time: 2001 is out of range, 2099 in (the range is open-ended);
    # the total counts what the list holds
    page = open_view(watched, stack, app="skew")
    assert rows(page) == ["on time", "dated 2099"]
    assert page.text_content("#total") == "2"
    assert page.locator("#later").is_visible()
    # the view by arrival holds all three, and so does its total
    reloaded(page, lambda: page.select_option("#by", "received"))
    assert url_params(page)["by"] == ["received"]
    assert rows(page) == ["on time", "dated 2099", "dated 2001"]
    assert page.text_content("#total") == "3"
