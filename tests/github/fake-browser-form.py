#!/usr/bin/env python3
"""Stands in for a person's browser on a page that posts a form on load
(GitHub's app-manifest flow): fetches the page, submits its first form
as a browser would (no script needed: the same fields, to the same
action), and follows the redirects. Trusts $VK_TEST_CA. Usage: as
BROWSER=/path/to/fake-browser-form.py, with the URL as its argument."""

import html.parser
import os
import ssl
import sys
import urllib.parse
import urllib.request


class Form(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.method, self.fields = None, "get", []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self.action, self.method = a.get("action", ""), a.get("method", "get").lower()
        elif tag == "input" and a.get("name"):
            self.fields.append((a["name"], a.get("value", "")))


context = ssl.create_default_context(cafile=os.environ.get("VK_TEST_CA"))
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
page_url = sys.argv[1]
page = opener.open(page_url, timeout=10).read().decode()
form = Form()
form.feed(page)
if form.action is None:
    sys.exit("no form on " + page_url)
target = urllib.parse.urljoin(page_url, form.action)
data = urllib.parse.urlencode(form.fields).encode()
opener.open(urllib.request.Request(target, data=data if form.method == "post" else None), timeout=10).read()
