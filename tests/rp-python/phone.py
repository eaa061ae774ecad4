"""The person's phone: the real `eid app` commands on the phone's own data
folder, with the PIN in EID_PIN (never on the command line)."""

import json
import os
import subprocess


class Phone:
    """One person's phone."""

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

    def shows(self, request_id):
        """Pulls, as the app does when it comes to the foreground, and
        returns the request's screen."""
        screens = [r for r in self.run("open")["requests"]
                   if r["request_id"] == request_id]
        assert len(screens) == 1, screens
        return screens[0]

    def only_request(self):
        """Pulls and returns the id of the one request waiting."""
        screens = self.run("open")["requests"]
        assert len(screens) == 1, screens
        return screens[0]["request_id"]

    def approve(self, request_id, code):
        """Approves with the PIN and the code from the bank's page (typed,
        or the scanned QR payload)."""
        self.shows(request_id)
        return self.run("approve", "--request", request_id,
                        "--binding-code", code)

    def deny(self, request_id):
        self.shows(request_id)
        return self.run("deny", "--request", request_id)

    def report_fraud(self, request_id):
        """"This wasn't me"."""
        self.shows(request_id)
        return self.run("report", "--request", request_id)
