"""The person's side of a login: a browser without JavaScript (requests and
the standard library's HTML parser, reading the page by the element ids of
the OIDC contract) and the phone (the real `eid app` CLI with the PIN in
EID_PIN)."""

import json
import os
import subprocess
import time
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import requests


class Element:
    """One element of a page: its tag, attributes and text."""

    def __init__(self, tag, attrs):
        self.tag = tag
        self.attrs = attrs
        self.text = ""


class LoginPage(HTMLParser):
    """The elements that carry an id, and each form's fields by name."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.by_id = {}
        self.forms = {}
        self._open = []
        self._form = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v if v is not None else "") for k, v in attrs}
        element = Element(tag, attrs)
        if "id" in attrs:
            self.by_id[attrs["id"]] = element
        if tag == "form":
            self._form = {"action": attrs.get("action", ""), "fields": {}}
            self.forms[attrs.get("id", "")] = self._form
        if tag == "input" and self._form is not None and "name" in attrs:
            kind = attrs.get("type", "text")
            # An unchecked box or radio button sends nothing, as in a browser.
            if kind not in ("checkbox", "radio") or "checked" in attrs:
                self._form["fields"][attrs["name"]] = attrs.get("value", "")
        if tag not in ("input", "img", "meta", "link", "br"):
            self._open.append(element)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        # Close the innermost open element of that tag (pages are well formed).
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element.text += data

    def text_of(self, element_id):
        return " ".join(self.by_id[element_id].text.split())


class Browser:
    """A browser without JavaScript: keeps cookies, follows redirects only
    on the provider's own origin and stops at the first one leaving it (the
    service provider's redirect URI, where nothing listens in this test)."""

    def __init__(self, issuer, verify):
        self.origin = issuer
        self.session = requests.Session()
        self.session.verify = verify

    def go(self, method, url, **kwargs):
        """The final answer on the provider's origin, or the URL outside it
        that a redirect pointed to (as a string)."""
        if method == "POST":
            # A browser names the page's origin on every form post.
            kwargs.setdefault("headers", {})["Origin"] = self.origin
        response = self.session.request(
            method, url, allow_redirects=False, timeout=10, **kwargs)
        for _ in range(10):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            target = urljoin(response.url, response.headers["Location"])
            if not target.startswith(self.origin + "/"):
                return target
            response = self.session.get(
                target, allow_redirects=False, timeout=10)
        raise AssertionError(f"more than 10 redirects from {url}")

    def open_login(self, authorize_url):
        """Opens the authorization URL: the provider's login page (step 1)."""
        page = self.go("GET", authorize_url)
        assert isinstance(page, requests.Response), page
        assert page.status_code == 200, (page.status_code, page.text[:500])
        return page

    def submit_user_id(self, page, user_id):
        """Types the user ID into step 1 and returns step 2 (binding code)."""
        form = LoginPage(page.text).forms["user-id-form"]
        fields = dict(form["fields"])
        fields["user_id"] = user_id
        step2 = self.go("POST", urljoin(page.url, form["action"]), data=fields)
        assert isinstance(step2, requests.Response), step2
        assert step2.status_code == 200, (step2.status_code, step2.text[:500])
        return step2

    def wait_for_redirect(self, login_url, seconds=15):
        """Does what the page's reload does until the login has an outcome:
        the URL of the redirect back to the service provider."""
        deadline = time.monotonic() + seconds
        continue_url = urljoin(
            login_url, urlparse(login_url).path.rstrip("/") + "/continue")
        while time.monotonic() < deadline:
            answer = self.go("GET", continue_url)
            if isinstance(answer, str):
                return answer
            time.sleep(0.25)
        raise AssertionError(f"no redirect from {continue_url} in {seconds} s")


def binding_code(page):
    """The channel-binding code as the person types it (no spaces)."""
    return "".join(LoginPage(page.text).text_of("binding-code").split())


class Phone:
    """The person's phone: the eid CLI on its own data folder."""

    def __init__(self, eid, app_dir, pin):
        self.eid = eid
        self.env = {**os.environ, "EID_APP_DIR": app_dir, "EID_PIN": pin}

    def run(self, *args):
        done = subprocess.run(
            [self.eid, "--json", "app", *args], env=self.env,
            capture_output=True, text=True, timeout=60, check=False)
        out = json.loads(done.stdout)
        assert done.returncode == 0, out
        return out

    def pending_login(self):
        """The one login waiting on the phone."""
        logins = [r for r in self.run("open")["requests"]
                  if r["kind"] == "login"]
        assert len(logins) == 1, logins
        return logins[0]

    def approve(self, request_id, code):
        return self.run("approve", "--request", request_id,
                        "--binding-code", code)

    def deny(self, request_id):
        return self.run("deny", "--request", request_id)
