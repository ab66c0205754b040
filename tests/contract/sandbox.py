"""Drives the Finexer sandbox's consent page with plain HTTP, as a browser would
(forms of `sandbox/src/pages`: info screen -> bank choice -> approve/deny), and
uses the sandbox's admin API (fault rules under `/_sandbox/faults`, forced
consent statuses)."""

from __future__ import annotations

import time

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import requests

TIMEOUT = 30


@dataclass
class Button:
    name: str | None
    value: str | None
    attrs: dict[str, str]


@dataclass
class Form:
    action: str
    method: str
    hidden: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[Form] = []
        self.step: str | None = None
        self._form: Form | None = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if tag == "main" and attrs.get("id", "").startswith("step-"):
            self.step = attrs["id"][len("step-") :]
        elif tag == "form":
            self._form = Form(attrs.get("action", ""), attrs.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is not None and tag == "input" and attrs.get("type") == "hidden":
            self._form.hidden.append((attrs.get("name", ""), attrs.get("value", "")))
        elif self._form is not None and tag == "button":
            self._form.buttons.append(Button(attrs.get("name"), attrs.get("value"), attrs))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def parse_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


class ConsentPage:
    """One browser's visit to a consent page: no automatic redirects, so the
    last one (to our callback) can be looked at before it is followed."""

    def __init__(self, consent_url: str):
        self.http = requests.Session()
        self.url = consent_url
        self.trail: list[str] = []

    def _get(self, url: str) -> requests.Response:
        self.trail.append(f"GET {url}")
        return self.http.get(url, allow_redirects=False, timeout=TIMEOUT)

    def _submit(self, url: str, form: Form, extra: list[tuple[str, str]]) -> requests.Response:
        target = urljoin(url, form.action)
        fields = [*form.hidden, *extra]
        self.trail.append(f"{form.method.upper()} {target} {fields}")
        if form.method == "get":
            query = urlencode(fields)
            return self.http.get(f"{target}?{query}", allow_redirects=False, timeout=TIMEOUT)
        return self.http.post(target, data=fields, allow_redirects=False, timeout=TIMEOUT)

    def decide(self, decision: str, bank: str = "sandbox-monzo", max_steps: int = 8) -> str:
        """Goes through the page to `decision` (`approve` or `deny`); answers
        the Location of the sandbox's final redirect (our callback)."""
        url = self.url
        response = self._get(url)
        for _ in range(max_steps):
            if response.status_code in (302, 303):
                location = urljoin(url, response.headers["location"])
                if urlsplit(location).netloc != urlsplit(self.url).netloc:
                    return location  # leaving the sandbox: back to us
                url = location
                response = self._get(url)
                continue
            if response.status_code != 200:
                raise AssertionError(
                    f"consent page answered {response.status_code} at {url}: {response.text[:300]}\n"
                    + "\n".join(self.trail)
                )
            page = parse_page(response.text)
            if page.step == "info":
                response = self._submit(url, page.forms[0], [])
            elif page.step == "bank":
                form = page.forms[0]
                choice = next(
                    (b for b in form.buttons if b.attrs.get("data-provider") == bank),
                    None,
                )
                assert choice is not None, f"bank {bank} not offered: {[b.value for b in form.buttons]}"
                response = self._submit(url, form, [(choice.name, choice.value)])
            elif page.step == "confirm":
                form = next(f for f in page.forms if f.action.endswith("/decision"))
                button = next(b for b in form.buttons if b.value == decision)
                response = self._submit(url, form, [(button.name, button.value)])
            else:
                raise AssertionError(f"unexpected consent page step {page.step!r} at {url}")
        raise AssertionError("the consent page did not send the browser back:\n" + "\n".join(self.trail))


class Sandbox:
    """The sandbox's admin API (fault rules); only on 127.0.0.1."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    @staticmethod
    def from_consent_url(consent_url: str) -> "Sandbox":
        parts = urlsplit(consent_url)
        return Sandbox(f"{parts.scheme}://{parts.netloc}")

    def is_local_sandbox(self) -> bool:
        host = urlsplit(self.base_url).hostname
        if host not in ("127.0.0.1", "localhost"):
            return False
        try:
            answer = requests.get(f"{self.base_url}/_sandbox/health", timeout=5)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def set_faults(self, *rules: dict) -> None:
        answer = requests.post(
            f"{self.base_url}/_sandbox/faults", json={"rules": list(rules)}, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text

    def settle_webhooks(self, consent_id: str, event_type: str, quiet: float = 0.5, within: float = 10.0) -> None:
        """Waits until the consent's `event_type` event has been delivered and
        answered and no further delivery for the consent came for `quiet`
        seconds: the webhook handler reads the consent at Finexer too, and must
        not take a fault rule a test sets for the request it makes next."""
        deadline = time.monotonic() + within
        seen, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            answer = requests.get(f"{self.base_url}/_sandbox/webhooks", timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text
            attempts = [a for a in answer.json()["data"] if a["consent_id"] == consent_id]
            if len(attempts) != seen:
                seen, still_since = len(attempts), time.monotonic()
            delivered = any(a["type"] == event_type and a["status"] is not None for a in attempts)
            if delivered and time.monotonic() - still_since >= quiet:
                return
            time.sleep(0.1)
        raise AssertionError(f"{event_type} for {consent_id} was not delivered, or deliveries did not stop, within {within} s")

    def clear_faults(self) -> None:
        requests.delete(f"{self.base_url}/_sandbox/faults", timeout=TIMEOUT)

    def force_status(self, consent_id: str, status: str) -> None:
        """Moves a consent to `status` at the sandbox, without its consent page."""
        answer = requests.post(
            f"{self.base_url}/_sandbox/consents/{consent_id}/status", json={"status": status}, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
