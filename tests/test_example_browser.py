"""ShopEasy in a real browser: headless Chromium, clicking like a person through the referral flow.

Needs Debian's ``chromium`` and ``chromium-driver`` (``eval "$(bash
.ci/chromium.sh)"`` installs them and exports ``HAVN_TEST_CHROMIUM``) and
Selenium; without them the test is skipped with that advice, and ``.ci/run``
refuses the skip. The app runs with its embedded sandbox on a loopback port in
a thread (werkzeug's ``make_server``), as ``make demo`` runs it: the sandbox
delivers its signed events to the app's own webhook endpoint. Screenshots of the key pages go to
``test-artifacts/example-browser/``.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest
from werkzeug.serving import make_server

from example_app import create_app, db

HOW_TO_INSTALL = ('install it with `eval "$(bash .ci/chromium.sh)"` (Debian\'s chromium and chromium-driver) '
                  "and `pip install -e '.[test]'` (Selenium)")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "example-browser"
#: Longest wait for something the app does in the background (webhook events), in seconds.
EVENT_WAIT = 30
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1100")


# Read at import: the suite's autouse fixture hides every HAVN_* variable from the tests themselves.
CHROMIUM = os.environ.get("HAVN_TEST_CHROMIUM") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("HAVN_TEST_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _executable(path: str, what: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"{what} is not at {path}: the browser test needs Chromium; {HOW_TO_INSTALL}")
    return path


@pytest.fixture
def serve_shopeasy(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start ShopEasy (with ``config`` over its defaults) on http://127.0.0.1:<ephemeral port>; returns the URL."""
    running: List[Tuple[Any, Any, threading.Thread]] = []

    def start(**config: Any) -> str:
        app = create_app({"HAVN_MAX_RETRIES": 0, **config}, instance_path=str(tmp_path / f"instance{len(running)}"))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="shopeasy", daemon=True)
        thread.start()
        running.append((app, server, thread))
        start.apps.append(app)  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{server.server_port}"

    start.apps = []  # type: ignore[attr-defined]  # the apps started, for a test that prepares rows in-process

    try:
        yield start
    finally:
        for app, server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            app.extensions["havn"].close()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium driven by Selenium through the system chromedriver."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"Selenium is missing; {HOW_TO_INSTALL}")
    from selenium.webdriver.chrome.service import Service

    chromium = _executable(CHROMIUM, "Chromium (HAVN_TEST_CHROMIUM)")
    chromedriver = _executable(CHROMEDRIVER, "chromedriver (HAVN_TEST_CHROMEDRIVER)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


class Person:
    """What a person does in the browser: open pages, fill fields, click, read."""

    def __init__(self, driver: Any, base_url: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select, WebDriverWait

        self.driver, self.base_url = driver, base_url
        self.By, self.Select, self.Wait = By, Select, WebDriverWait
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, css: str) -> Any:
        return self.driver.find_element(self.By.CSS_SELECTOR, css)

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def choose(self, css: str, visible_text: str) -> None:
        self.Select(self.find(css)).select_by_visible_text(visible_text)

    def click(self, css: str) -> None:
        """Click something that stays on the page (a button handled by the page's script)."""
        self.find(css).click()

    def page(self) -> Optional[Tuple[str, str]]:
        """``(endpoint, render id)`` from ``<body data-page data-render>`` once the page has loaded, else ``None``."""
        marker = self.driver.execute_script(
            "return document.readyState === 'complete' && document.body && document.body.dataset.render"
            " ? [document.body.dataset.page, document.body.dataset.render] : null;")
        return (marker[0], marker[1]) if marker else None

    def follow(self, css: str = "", *, link_text: str = "", to: str) -> None:
        """Click a link or submit button, wait for the next page to load and check it is page ``to`` (an endpoint).

        The wait reads the new page's own marker (a fresh ``data-render`` on its
        ``<body>``), never an element of the old page, which Chromium may
        already have dropped ("Node with given id does not belong to the document").
        """
        from selenium.common.exceptions import WebDriverException

        before = self.page()
        assert before is not None, "follow() starts on a loaded ShopEasy page"
        target = self.driver.find_element(self.By.LINK_TEXT, link_text) if link_text else self.find(css)
        target.click()
        arrived: List[Tuple[str, str]] = []

        def next_page(driver: Any) -> bool:
            now = self.page()  # None while the old document unloads or the new one loads
            if now is not None and now[1] != before[1]:
                arrived.append(now)
                return True
            return False

        self.Wait(self.driver, 15, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)).until(
            next_page, message=f"clicking {css or link_text} on {before[0]} led nowhere")
        assert arrived[-1][0] == to, f"clicking {css or link_text} led to {arrived[-1][0]}, not {to}: {self.flash()}"

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def flash(self) -> str:
        return " ".join(e.text for e in self.driver.find_elements(self.By.CSS_SELECTOR, ".flash"))

    def screenshot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"could not save {path}"
        return path

    def wait_for(self, what: str, check: Callable[[], bool], seconds: float = EVENT_WAIT) -> None:
        """Reload the page until ``check()`` holds (what a person waiting for news does); fail after ``seconds``."""
        def reloaded(driver: Any) -> bool:
            driver.refresh()
            return check()

        self.Wait(self.driver, seconds, poll_frequency=0.25).until(reloaded, message=f"waited for {what}")


def test_a_referred_project_pays_and_its_referrer_sees_the_commission(serve_shopeasy: Callable[..., str],
                                                                       browser: Any) -> None:
    me = Person(browser, serve_shopeasy())

    # Project A, from the projects page.
    me.open("/")
    assert me.text("#havn-mode") == "SANDBOX"  # the badge (CSS upper-cases "sandbox")
    assert me.find("#havn-mode").get_attribute("textContent") == "sandbox"
    me.fill("#project_name", "Acme Analytics")
    me.follow("#create-project", to="projects.show")
    assert "Project Acme Analytics created" in me.flash()
    assert me.text("h1").startswith("Acme Analytics")

    # Sync A's owner: A gets its referral code; copy it.
    me.fill("#owner-email", "ann@acme.example")
    me.fill("#owner-name", "Ann Acme")
    me.follow("#sync-owner", to="projects.show")
    code_a = me.find("#referral-code").get_attribute("value")
    assert re.fullmatch(r"HAVN-[A-Z0-9-]+", code_a), code_a
    assert f"referral code is {code_a}" in me.flash()
    me.click("#copy-code")
    me.Wait(browser, 5).until(lambda d: me.text("#copy-code") == "Copied")
    me.screenshot("01-project-a-synced")

    # "Refer a new project": B's form comes with A's code filled in.
    me.follow("#refer-link", to="projects.index")
    assert me.find("#upline_referral_code").get_attribute("value") == code_a
    me.fill("#project_name", "Bolt Bikes")
    me.follow("#create-project", to="projects.show")
    assert me.text("h1").startswith("Bolt Bikes")
    assert f"Referred by Acme Analytics {code_a}" in me.text(".lead")
    me.fill("#owner-email", "bo@bolt.example")
    me.fill("#owner-name", "Bo Bolt")
    me.follow("#sync-owner", to="projects.show")
    code_b = me.find("#referral-code").get_attribute("value")
    assert code_b != code_a

    # B pays 100.00 USD at the checkout.
    me.follow("#checkout-link", to="payments.checkout")
    assert me.Select(me.find("#project_id")).first_selected_option.text == "Bolt Bikes"
    assert me.find("#customer_email").get_attribute("value") == "bo@bolt.example"
    me.fill("#amount", "100.00")
    me.choose("#currency", "USD")
    me.screenshot("02-checkout")
    me.follow("#pay", to="payments.show")
    assert "HAVN recorded transaction" in me.flash()
    assert me.text("#delivery-state") == "sent"
    assert me.text("#total-commission") != "—"
    me.screenshot("03-payment-sent")

    # A's commission arrives as a signed event; ShopEasy's receiver puts it in the feed.
    me.open("/activity")
    expected = f"{code_a} earned 5.00 USD (level 1) on payment #1 of Bolt Bikes"

    def feed_has_it() -> bool:
        feeds = browser.find_elements(me.By.CSS_SELECTOR, "#commission-feed")
        return bool(feeds) and expected in feeds[0].text

    me.wait_for("A's commission in the activity feed", feed_has_it)
    assert "commission.distributed" in me.text("#webhook-log")
    me.screenshot("04-activity")

    # And on A's node in the network picture.
    me.follow(link_text="Referral network", to="network.index")
    node_a = me.find(f'svg#network-svg g.node[data-referral-code="{code_a}"]')
    assert "Acme Analytics" in node_a.text and code_a in node_a.text
    assert "earned 5.00 USD" in node_a.text
    node_b = me.find(f'svg#network-svg g.node[data-referral-code="{code_b}"]')
    assert "earned 0.00 USD" in node_b.text
    assert node_b.location["y"] > node_a.location["y"]  # B hangs under A
    me.screenshot("05-network")


def _create_and_sync(me: Person, name: str, email: str, owner: str) -> str:
    """Create a project from the current projects form and sync its owner; its referral code."""
    me.fill("#project_name", name)
    me.follow("#create-project", to="projects.show")
    assert me.text("h1").startswith(name)
    me.fill("#owner-email", email)
    me.fill("#owner-name", owner)
    me.follow("#sync-owner", to="projects.show")
    return me.find("#referral-code").get_attribute("value")


def test_an_idr_payment_converted_by_shopeasy_fails_when_havn_moved_its_rate(serve_shopeasy: Callable[..., str],
                                                                              browser: Any) -> None:
    me = Person(browser, serve_shopeasy(HAVN_CURRENCY_CONVERSION="client", HAVN_EXCHANGE_RATES={"IDR": "0.0000633"}))
    me.open("/")
    code_a = _create_and_sync(me, "Acme Analytics", "ann@acme.example", "Ann Acme")
    me.follow("#refer-link", to="projects.index")
    assert me.find("#upline_referral_code").get_attribute("value") == code_a
    _create_and_sync(me, "Bolt Bikes", "bo@bolt.example", "Bo Bolt")

    # HAVN (the sandbox) now converts rupiah at another rate than ShopEasy's 0.0000633.
    me.open("/sandbox")
    me.choose("#rate-currency", "IDR")
    me.fill("#rate-value", "0.00007")
    me.follow("#set-rate", to="sandbox_tools.index")
    assert "converts 1 IDR at 0.00007 USD" in me.flash()

    me.open("/checkout?project=2")
    assert "converted to USD by ShopEasy" in me.text("#conversion-mode")
    me.fill("#amount", "1500000")
    me.choose("#currency", "IDR")
    me.follow("#pay", to="payments.show")
    assert "refused the currency conversion" in me.flash() and me.text("#delivery-state") == "conversion failed"
    failure = me.text("#conversion-failure")
    assert "ShopEasy sent 94.95 USD (rate 0.0000633)" in failure and "HAVN expected 105.00 USD (rate 0.00007)" in failure
    assert me.text("#conversion-mode") == "ShopEasy" and me.text("#conversion-verdict") == "failed"
    assert me.text("#amount-usd") == "94.95 USD" and me.text("#havn-amount-usd") == "105.00 USD"
    assert me.text("#total-commission") == "0.00 USD"
    me.screenshot("06-idr-conversion-failed")

    me.open("/activity")
    me.wait_for("the failure", lambda: "Conversion failed on payment #1 of Bolt Bikes (1,500,000 IDR)"
                in me.text("#failure-feed"))
    assert len(browser.find_elements(me.By.CSS_SELECTOR, "#failure-feed li")) == 1  # answer + event: one line
    me.wait_for("HAVN's event", lambda: "transaction.conversion_failed" in me.text("#webhook-log"))
    assert len(browser.find_elements(me.By.CSS_SELECTOR, "#failure-feed li")) == 1
    assert not browser.find_elements(me.By.CSS_SELECTOR, "#commission-feed li")
    me.screenshot("07-idr-failure-in-activity")


def test_a_shared_referral_link_signs_up_a_referred_project_whose_first_checkout_gets_the_voucher(
        serve_shopeasy: Callable[..., str], browser: Any) -> None:
    me = Person(browser, serve_shopeasy())
    me.open("/")
    code_a = _create_and_sync(me, "Acme Analytics", "ann@acme.example", "Ann Acme")

    # A's page: the share box, then a welcome voucher on the link.
    assert me.find("#share-url").get_attribute("value").endswith(f"/havn-link/r/shopeasy?ref={code_a}")
    me.follow("#make-voucher", to="projects.show")
    voucher = code_a + "-WELCOME"
    assert me.find("#share-url").get_attribute("value").endswith(f"?ref={code_a}&vc={voucher}")

    # A visitor follows the link: HAVN (the sandbox) redirects to ShopEasy's sign-up, which keeps ref and vc.
    me.follow("#share-link", to="referrals.signup")
    assert f"You were invited by Acme Analytics {code_a}" in me.text("#invitation")
    assert me.text("#invitation-voucher") == voucher
    me.screenshot("08-referral-landing")
    me.fill("#project_name", "Bolt Bikes")
    me.fill("#owner-email", "bo@bolt.example")
    me.fill("#owner-name", "Bo Bolt")
    me.follow("#sign-up", to="projects.show")
    assert f"referred by {code_a}" in me.flash()
    assert f"Referred by Acme Analytics {code_a}" in me.text(".lead")
    assert me.driver.get_cookie("havn_referral") is None

    # First checkout: the voucher's discount is offered; HAVN records REFERRAL_VOUCHER.
    me.follow("#checkout-link", to="payments.checkout")
    assert "20% off" in me.text("#referral-voucher")
    assert me.find("#voucher_code").get_attribute("value") == voucher
    me.fill("#amount", "100.00")
    me.screenshot("09-referral-first-checkout")
    me.follow("#pay", to="payments.show")
    assert me.text("#acquisition-method") == "REFERRAL_VOUCHER"
    assert me.text("#payment-amount") == "80.00 USD" and me.text("#payment-subtotal") == "100.00 USD"

    # Second checkout: no voucher any more.
    me.open("/checkout?project=2")
    assert not browser.find_elements(me.By.CSS_SELECTOR, "#referral-voucher")
    assert me.find("#voucher_code").get_attribute("value") == ""
    me.fill("#amount", "100.00")
    me.follow("#pay", to="payments.show")
    assert me.text("#acquisition-method") == "REFERRAL"
