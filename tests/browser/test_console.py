"""The operator console in headless Chromium against real gateway processes.

What an operator would check: every page renders real data from the gateway,
a reply sent from the console reaches `sent`, closing a session changes its
badge, those events show in the live feed, Kchat offers no reply box, and with
keys configured a wrong key is refused and the right one works. Screenshots of
each page go to target/console-screenshots/.
"""

import json
import re
import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import SCREENSHOTS, api_get

# Endpoints of the contract that an older gateway build may lack: the console
# shows an inline notice for their 404/405, which Chromium also logs as a
# failed resource load. Anything else in the console log fails the test.
OPTIONAL_ENDPOINTS = re.compile(r"/v1/(stats|customers)\b|/v1/messages/[^/ ]+/media|/v1/webhooks/[^/ ]+(/rotate-secret|/recover|/deliveries/[^/ ]+/retry)?\b")


def wait(driver, cond, timeout=30, what="", screenshot=True):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)
    except TimeoutException:
        if not screenshot:
            raise AssertionError(f"timed out waiting for {what}")
        shot = SCREENSHOTS / f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:40]}.png"
        driver.save_screenshot(str(shot))
        raise AssertionError(f"timed out waiting for {what} (screenshot {shot}); page: {driver.find_element(By.TAG_NAME, 'main').text[:1500]}")


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def attrs(driver, selector, name):
    """An attribute of every match, read in one step (rows are replaced live)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]))", selector, name)


def texts(driver, selector):
    """The visible text of every match, read in one step."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText)", selector)


def go(driver, base, hash_route):
    """Navigates inside the app (no reload: the event stream and feed history stay)."""
    if not driver.current_url.startswith(base + "/console"):
        driver.get(base + "/console" + hash_route)
    else:
        driver.execute_script("location.hash = arguments[0]", hash_route)


def console_problems(driver, base, allowed_status=(404, 405)):
    """Browser log entries that are real problems (script errors, CSP violations, unexpected failed loads).

    A provider's own media URL that does not load (the simulators use
    example.com hosts) is the provider's content, not the console's, and is
    not counted.
    """
    problems = []
    for entry in driver.get_log("browser"):
        print("browser log:", entry["level"], entry["message"])
        if entry["level"] not in ("SEVERE", "WARNING"):
            continue
        msg = entry["message"]
        if "Failed to load resource" in msg and not msg.startswith(base):
            continue
        if "Failed to load resource" in msg:
            m = re.search(r"status of (\d+)", msg)
            status = int(m.group(1)) if m else 0
            if status in allowed_status and (status == 401 or OPTIONAL_ENDPOINTS.search(msg)):
                continue
        if entry["level"] == "WARNING" and "Failed to load resource" not in msg and "Content Security Policy" not in msg:
            continue
        problems.append(msg)
    return problems


def viewport(driver, width, height, mobile=False):
    """Sets the page's own viewport (not the window, which includes browser chrome)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def shot(driver, name):
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def open_first_session(driver, base, provider, status=None):
    q = f"provider={provider}" + (f"&status={status}" if status else "")
    go(driver, base, f"#/conversations?{q}")
    rows = f'#sessions tr[data-provider="{provider}"]' + (f'[data-status="{status}"]' if status else "")
    wait(driver, lambda d: css(d, rows), 90, f"a {status or ''} {provider} session in the list")
    link = css(driver, rows + " a.open-session")[0]
    link.send_keys(Keys.ENTER)  # keyboard, as an operator without a mouse would
    wait(driver, lambda d: d.find_element(By.ID, "messages").get_attribute("data-loaded") == "true"
         and d.find_element(By.ID, "session-actions").get_attribute("data-ready") == "true", 30, f"{provider} conversation")
    return driver.current_url.split("#/conversations/")[1]


def test_demo_console_end_to_end(demo_env, browser):
    demo = demo_env.base
    d = browser
    viewport(d, 1280, 800)
    d.get(demo + "/")  # the root redirects to the console
    assert d.current_url.startswith(demo + "/console"), d.current_url
    # No keys on a loopback demo: the console opens directly, no login form.
    wait(d, lambda d: len(css(d, "#accounts [data-account]")) == 3, 30, "three account cards")
    assert not css(d, "#login")
    providers = set(attrs(d, "#accounts [data-account]", "data-provider"))
    assert providers == {"spark", "ccmessaging", "kchat"}
    spark_card = texts(d, '#accounts [data-account="spark-demo"]')[0]
    for cap in ("send", "close", "restart", "transfer"):
        assert cap in spark_card, spark_card
    wait(d, lambda d: css(d, '#stream-state') and "live" in css(d, "#stream-state")[0].text, 20, "event stream live")
    # Stats: a chart, or an inline notice on a gateway without /v1/stats.
    wait(d, lambda d: css(d, "#chart-volume svg") or css(d, "#stats .notice") or css(d, "#stats .muted:not(:empty)")
         and "Loading" not in css(d, "#stats")[0].text, 30, "stats section")
    shot(d, "overview")

    # Start a backfill of the ccmessaging account; its card shows its progress.
    card = '#accounts [data-account="ccmessaging-demo"]'
    css(d, f"{card} details summary")[0].click()
    assert css(d, f'{card} input[name="customers"]'), "ccmessaging backfills take customer ids"
    assert not css(d, '#accounts [data-account="kchat-demo"] input[name="customers"]')
    css(d, f'{card} button[type="submit"]')[0].click()
    wait(d, lambda d: css(d, f"{card} .ok") or css(d, f"{card} .error"), 15, "backfill answer")
    assert not css(d, f"{card} .error"), texts(d, f"{card} .error")
    wait(d, lambda d: css(d, f'{card} .backfill[data-state="running"], {card} .backfill[data-state="done"]'),
         15, "backfill progress on the card")
    assert "messages fetched" in texts(d, f"{card} .backfill")[0]

    # Sessions of all three providers, each through the provider filter.
    for provider in ("spark", "ccmessaging", "kchat"):
        go(d, demo, "#/conversations")
        wait(d, lambda d: css(d, "#sessions tr"), 60, "sessions")
        Select(d.find_element(By.ID, "f-provider")).select_by_value(provider)
        wait(d, lambda d: css(d, "#sessions tr") and all(
            r.get_attribute("data-provider") == provider for r in css(d, "#sessions tr")), 60, f"{provider} sessions")
        assert d.find_element(By.ID, "f-provider").get_attribute("value") == provider
    go(d, demo, "#/conversations")
    wait(d, lambda d: len(css(d, "#sessions tr")) >= 10, 60, "session list")
    shot(d, "conversations")
    # Newest first, and new sessions arrive live at the top without a reload.
    starts = attrs(d, "#sessions tr", "data-session-id")
    wait(d, lambda d: attrs(d, "#sessions tr", "data-session-id")[0] not in starts, 90,
         "a new session arriving live at the top")
    assert "fresh" in attrs(d, "#sessions tr", "class")[0]
    # Infinite scroll: the demo holds more than one page (50) of sessions.
    first_page = len(css(d, "#sessions tr"))
    d.execute_script("document.querySelector('.sentinel').scrollIntoView()")
    wait(d, lambda d: len(css(d, "#sessions tr")) > max(first_page, 50), 20, "the next page on scroll")
    ids = attrs(d, "#sessions tr", "data-session-id")
    assert len(ids) == len(set(ids)), "no session listed twice across pages"

    # Message search (Chinese text included).
    box = d.find_element(By.ID, "f-q")
    box.send_keys("退款")
    box.send_keys(Keys.ENTER)
    wait(d, lambda d: css(d, "#search-results li"), 20, "search results for 退款")
    assert all("退款" in t for t in texts(d, "#search-results li"))

    # A Spark conversation: reply, watch it turn sent, close, see the badge change.
    # The simulated customers and agents pause meanwhile, so that only the
    # console closes this session.
    demo_env.traffic(False)
    session_id = open_first_session(d, demo, "spark", "open")
    assert css(d, "#reply-text"), "Spark offers a reply box"
    assert css(d, "#action-close") and css(d, "#action-transfer")
    assert css(d, '#session-status [data-badge="open"]')
    text = f"您好，控制台回复 {uuid.uuid4().hex[:8]}"
    box = d.find_element(By.ID, "reply-text")
    box.send_keys(text)
    send = d.find_element(By.ID, "reply-send")
    send.click()
    mine = f'#messages .msg.outbound'
    wait(d, lambda d: [m for m in css(d, mine) if text in m.text], 15, "the reply in the conversation")
    wait(d, lambda d: [m for m in css(d, mine) if text in m.text and m.get_attribute("data-delivery") == "sent"],
         30, "the reply's delivery to turn sent")
    found = d.execute_script("""
        return [...document.querySelectorAll(arguments[0])].filter(m => m.innerText.includes(arguments[1]))
          .map(m => [m.dataset.messageId, m.querySelector('.delivery').innerText])""", mine, text)
    assert len(found) == 1, f"the reply appears once: {found}"
    message_id, delivery = found[0]
    assert "sent" in delivery
    shot(d, "conversation-spark")

    # A double submit sends once: both requests carry the same Idempotency-Key.
    twice = f"只发一次 {uuid.uuid4().hex[:8]}"
    d.find_element(By.ID, "reply-text").send_keys(twice)
    d.execute_script("""
        window.postedReplies = 0;
        const realFetch = window.fetch;
        window.fetch = (url, opts) => {
          if (opts && opts.method === 'POST' && String(url).endsWith('/messages')) window.postedReplies += 1;
          return realFetch(url, opts);
        };
        const f = document.getElementById('reply');
        f.requestSubmit();
        f.requestSubmit();""")
    wait(d, lambda d: [m for m in css(d, mine) if twice in m.text and m.get_attribute("data-delivery") == "sent"],
         30, "the double-submitted reply sent")
    assert d.execute_script("return window.postedReplies") == 2, "both submits reached the gateway"
    stored = [m for m in api_get(demo, f"/v1/sessions/{session_id}/messages?limit=500")["data"] if m["text"] == twice]
    assert len(stored) == 1, stored
    assert len([t for t in texts(d, mine) if twice in t]) == 1
    d.find_element(By.ID, "action-close").click()
    wait(d, lambda d: css(d, '#session-status [data-badge="closed"]'), 20, "the closed badge")
    assert not css(d, "#action-result .error"), d.find_element(By.ID, "action-result").text
    assert css(d, "#action-restart"), "a closed Spark session offers restart"
    assert d.find_element(By.ID, "reply-text").get_attribute("disabled") is not None
    # Restart reopens it (the reply box comes back), and it closes again.
    d.find_element(By.ID, "action-restart").click()
    wait(d, lambda d: css(d, '#session-status [data-badge="open"]'), 20, "the reopened badge")
    assert not css(d, "#action-result .error"), d.find_element(By.ID, "action-result").text
    assert d.find_element(By.ID, "reply-text").get_attribute("disabled") is None
    d.find_element(By.ID, "action-close").click()
    wait(d, lambda d: css(d, '#session-status [data-badge="closed"]'), 20, "the closed badge again")
    assert not css(d, "#action-result .error"), d.find_element(By.ID, "action-result").text
    demo_env.traffic(True)

    # The list shows the new state too.
    go(d, demo, f"#/conversations?provider=spark&status=closed")
    wait(d, lambda d: css(d, f'#sessions tr[data-session-id="{session_id}"] [data-badge="closed"]'), 30, "closed badge in list")

    # The live feed carries those events; filters, pause and JSON on click work.
    go(d, demo, "#/feed")
    wait(d, lambda d: css(d, f'#feed li[data-type="message.updated"][data-message-id="{message_id}"]'), 20, "message.updated in feed")
    wait(d, lambda d: css(d, f'#feed li[data-type="message.created"][data-message-id="{message_id}"]'), 5, "message.created in feed")
    wait(d, lambda d: css(d, f'#feed li[data-type="session.closed"][data-session-id="{session_id}"]'), 5, "session.closed in feed")
    wait(d, lambda d: css(d, f'#feed li[data-type="session.reopened"][data-session-id="{session_id}"]'), 5, "session.reopened in feed")
    shot(d, "feed")
    Select(d.find_element(By.ID, "feed-type")).select_by_value("session.closed")
    types = attrs(d, "#feed li", "data-type")
    assert types and set(types) == {"session.closed"}, types
    closed = css(d, f'#feed li[data-session-id="{session_id}"]')[0]
    closed.find_element(By.TAG_NAME, "button").click()
    payload = json.loads(closed.find_element(By.TAG_NAME, "pre").text)
    assert payload["type"] == "session.closed" and payload["session_id"] == session_id
    assert payload["data"]["status"] == "closed"
    Select(d.find_element(By.ID, "feed-type")).select_by_value("")
    pause = d.find_element(By.ID, "feed-pause")
    pause.click()
    assert pause.text == "Resume"
    before = len(css(d, "#feed li"))
    wait(d, lambda d: "held while paused" in d.find_element(By.ID, "feed-held").text, 30, "events held while paused")
    assert len(css(d, "#feed li")) == before, "a paused feed does not move"
    pause.click()
    assert pause.text == "Pause"
    wait(d, lambda d: len(css(d, "#feed li")) > before, 5, "held events shown on resume")

    # Kchat: no reply box, no session actions.
    open_first_session(d, demo, "kchat")
    assert not css(d, "#reply"), "Kchat must not offer a reply box"
    assert not css(d, "#reply-text")
    assert css(d, "#no-reply")
    assert not css(d, "#action-close") and not css(d, "#action-transfer")
    shot(d, "conversation-kchat")

    # Webhooks: add an endpoint (its secret shown once), see its failing deliveries.
    go(d, demo, "#/webhooks")
    d.find_element(By.CSS_SELECTOR, "main details summary").click()
    d.find_element(By.ID, "wh-url").send_keys("http://127.0.0.1:9/hooks/chat")
    d.find_element(By.ID, "wh-create").click()
    wait(d, lambda d: css(d, "#new-secret") and d.find_element(By.ID, "new-secret").text.startswith("whsec_"), 15, "new secret")
    wait(d, lambda d: css(d, "#webhooks [data-webhook-id]"), 10, "webhook listed")
    webhook_id = css(d, "#webhooks [data-webhook-id]")[0].get_attribute("data-webhook-id")
    for _ in range(30):
        go(d, demo, "#/conversations")
        go(d, demo, "#/webhooks")
        try:
            wait(d, lambda d: css(d, f'[data-webhook-id="{webhook_id}"] tr[data-status="failed"]'), 3, "a failed delivery", screenshot=False)
            break
        except AssertionError:
            continue
    failed = css(d, f'[data-webhook-id="{webhook_id}"] tr[data-status="failed"]')
    assert failed, "a delivery to a closed port is listed as failed"
    assert "—" not in failed[0].find_elements(By.TAG_NAME, "td")[5].text, "the failure carries its error"
    assert not css(d, "#new-secret"), "the secret is shown once only"
    shot(d, "webhooks")

    # Retry, rotate and disable: each shows its result, or, on a gateway that
    # lacks that endpoint, an inline notice naming the error code.
    panel = f'[data-webhook-id="{webhook_id}"]'

    def outcome(button_css, success_css):
        css(d, f"{panel} {button_css}")[0].click()
        wait(d, lambda d: css(d, f"{panel} .webhook-result {success_css}")
             or css(d, f"{panel} .webhook-result [data-error-code]"), 10, f"result of {button_css}")
        notices = css(d, f"{panel} .webhook-result [data-error-code]")
        if notices:
            code = notices[0].get_attribute("data-error-code")
            assert code in ("not_found", "method_not_allowed") and "notice" in notices[0].get_attribute("class"), \
                notices[0].text
            return False
        return True

    if outcome(".wh-retry", ".ok"):
        assert "queued again" in css(d, f"{panel} .webhook-result")[0].text
    if outcome(".wh-rotate", ".secret"):
        assert css(d, f"{panel} .webhook-result .secret")[0].text.startswith("whsec_")
    assert css(d, f'{panel} [data-badge="enabled"]')
    css(d, f"{panel} .wh-toggle")[0].click()
    wait(d, lambda d: css(d, f'{panel} [data-badge="disabled (manual)"]')
         or css(d, f"{panel} .webhook-result [data-error-code]"), 10, "result of disabling")
    for notice in css(d, f"{panel} .webhook-result [data-error-code]"):
        assert notice.get_attribute("data-error-code") in ("not_found", "method_not_allowed"), notice.text

    # Narrow screen: the conversation is still readable.
    viewport(d, 390, 844, mobile=True)
    go(d, demo, f"#/conversations/{session_id}")
    wait(d, lambda d: d.find_element(By.ID, "messages").get_attribute("data-loaded") == "true", 20, "narrow conversation")
    width = d.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"no horizontal scrolling at 390 px (page is {width} px wide)"
    shot(d, "conversation-narrow")
    go(d, demo, "#/overview")
    wait(d, lambda d: len(css(d, "#accounts [data-account]")) == 3, 20, "narrow overview")
    shot(d, "overview-narrow")
    viewport(d, 1280, 800)

    # No key ever went into a URL (there is none here) and nothing failed in the console.
    assert console_problems(d, demo) == []


def test_keyed_console_refuses_a_wrong_key_and_accepts_the_right_one(keyed, browser):
    base, key = keyed
    d = browser
    viewport(d, 1280, 800)
    d.get(base + "/console")
    wait(d, lambda d: css(d, "#login #api-key"), 20, "the login form")
    assert not d.find_element(By.ID, "nav").is_displayed(), "no page links before a key is accepted"
    shot(d, "login")
    d.find_element(By.ID, "api-key").send_keys("not-the-key")
    d.find_element(By.ID, "api-key").send_keys(Keys.ENTER)
    wait(d, lambda d: css(d, '#login-result [data-error-code="unauthorized"]'), 10, "the wrong key refused")
    assert d.execute_script("return sessionStorage.length") == 0
    assert not css(d, "#accounts")

    field = d.find_element(By.ID, "api-key")
    field.clear()
    field.send_keys(key)
    d.find_element(By.ID, "login-submit").click()
    wait(d, lambda d: len(css(d, "#accounts [data-account]")) == 2, 20, "accounts with the right key")
    assert d.find_element(By.ID, "nav").is_displayed()
    assert set(attrs(d, "#accounts [data-account]", "data-account")) == {"spark-main", "kf5"}
    wait(d, lambda d: "live" in d.find_element(By.ID, "stream-state").text, 20, "authenticated event stream")
    # Kept in this tab's sessionStorage, and a reload stays signed in.
    assert d.execute_script("return Object.values(sessionStorage)") == [key]
    d.refresh()
    wait(d, lambda d: len(css(d, "#accounts [data-account]")) == 2, 20, "accounts after reload")
    go(d, base, "#/conversations")
    wait(d, lambda d: "conversation" in d.find_element(By.ID, "sessions-status").text, 20, "sessions list with the key")
    # The key never travels in a URL: every request the page made, and its own address.
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
    assert any("/v1/accounts" in u for u in urls), urls
    assert not [u for u in urls if key in u]
    d.find_element(By.ID, "sign-out").click()
    wait(d, lambda d: css(d, "#login #api-key"), 10, "login after sign-out")
    assert d.execute_script("return sessionStorage.length") == 0
    assert console_problems(d, base, allowed_status=(401, 404, 405)) == []
