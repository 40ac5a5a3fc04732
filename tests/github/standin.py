#!/usr/bin/env python3
"""A small stand-in for GitHub, for the egress proxy's tests.

Real GitHub is not reachable from the test machines. This serves, over
HTTPS, the parts of GitHub's published API that Valet Key's proxy tests
use, in GitHub's shapes:

* on the "git" port (github.com): the OAuth web flow of a GitHub App with
  expiring user tokens (GET /login/oauth/authorize, which approves at
  once, as a person would; POST /login/oauth/access_token with the
  authorization_code and refresh_token grants, a client secret and
  PKCE), and git's smart HTTP protocol through the real `git
  http-backend` (GET info/refs, POST git-upload-pack and
  git-receive-pack), behind HTTP basic auth with a user token as the
  password, as GitHub does it;
* the app-manifest flow: POST /settings/apps/new (git port; the form
  field `manifest`, approved at once) redirects to the manifest's
  `redirect_url` with a code, and POST /app-manifests/{code}/conversions
  (api port) answers with the new app's id, client id, client secret,
  webhook secret and private key; the new app's client id and secret
  work like the first one's from then on;
* on the "api" port (api.github.com): GET /user, GET /repos/{o}/{r},
  GET /repos/{o}/{r}/contents/{path}, GET /repos/{o}/{r}/readme,
  DELETE /repos/{o}/{r}, POST /graphql for `repository(owner:, name:)`
  (what `gh repo view` asks; GitHub's NOT_FOUND error where the token may
  not see it), with
  `Authorization: Bearer|token TOKEN`, and 401 "Bad credentials" without
  a live token; and POST /applications/{client_id}/token/scoped (basic
  auth with the app's client id and secret), which turns a user token into
  one limited to `permissions` and, with `target`, to `repositories` of
  that owner. A scoped token is held to them as GitHub holds it: another
  repository is 404 Not Found, a missing permission 403 "Resource not
  accessible by integration";
* with no credential at all, as GitHub answers: a repository named with
  --public OWNER/REPO is read (REST GETs, git fetch and clone), a private
  one is 404 Not Found on the api port (its existence is not told) and 401
  with a Basic challenge on the git port, and GET /user is 401 "Requires
  authentication".

A third port ("other", with --other-port) is not GitHub at all: it
stands for any other host a box may reach, answers 200 to everything and
records what credential arrived, so a test can see a placeholder arrive
there unchanged.

What is not GitHub: the authorize endpoint approves without a person,
tokens are random strings, GET /_standin/echo (api port) answers with the
request's headers, as a provider endpoint that reflects them would (and
its Authorization again in an X-Echo-Authorization header), for the
proxy's response masking, and GET /_standin/seen (api port, no auth)
tells a test what credentials arrived: for each request, its method,
path and whether the credential was a live issued token ("issued"),
something shaped like a Valet Key placeholder ("placeholder"), another
string ("other") or absent ("none"). GET /_standin/issued lists the
access tokens issued, so a test can look for them where they must not
be.

Usage: standin.py --cert C --key K --api-port P --git-port Q
       --repos DIR --client-id ID --client-secret S [--public OWNER/REPO]…
Prints {"ready": true} once both ports listen.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
CODES = {}  # code -> (code_challenge, redirect_uri)
ACCESS = {}  # access token -> {"exp": unix seconds, "perms": dict|None, "repos": [(o, r)]|None}
REFRESH = set()
CLIENTS = {}  # client id -> secret
MANIFESTS = {}  # code -> manifest
APPS = []
SEEN = []
ISSUED = []
ARGS = None


def live(token):
    with LOCK:
        t = ACCESS.get(token)
    return t if t and t["exp"] > time.time() else None


def public(owner, repo):
    """Whether OWNER/REPO was named with --public: read without a
    credential, as GitHub serves a public repository."""
    return f"{owner}/{repo}".lower() in {r.lower() for r in ARGS.public}


def repository(owner, name):
    """A repository as GitHub's GraphQL schema has it (the fields gh asks
    for in `gh repo view`, each of its schema type)."""
    full = f"{owner}/{name}"
    return {
        "id": "R_standin", "name": name, "nameWithOwner": full,
        "owner": {"id": "U_standin", "login": owner},
        "description": "a repository of the GitHub stand-in", "homepageUrl": "",
        "url": f"https://github.com/{full}", "sshUrl": f"git@github.com:{full}.git",
        "isPrivate": not public(owner, name), "visibility": "PUBLIC" if public(owner, name) else "PRIVATE",
        "isArchived": False, "isFork": False, "isTemplate": False, "isEmpty": False, "isMirror": False,
        "hasIssuesEnabled": True, "hasWikiEnabled": False, "hasProjectsEnabled": False, "hasDiscussionsEnabled": False,
        "viewerPermission": "READ", "viewerCanAdminister": False,
        "defaultBranchRef": {"name": "main"}, "stargazerCount": 0, "forkCount": 0, "watchers": {"totalCount": 0},
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "pushedAt": "2026-01-01T00:00:00Z",
        "parent": None, "templateRepository": None, "licenseInfo": None, "primaryLanguage": None,
        "repositoryTopics": {"nodes": []}, "issues": {"totalCount": 0}, "pullRequests": {"totalCount": 0},
    }


def classify(token):
    if token is None:
        return "none"
    t = live(token)
    if t:
        return "scoped" if t["perms"] is not None else "issued"
    if token.startswith("vkp_"):
        return "placeholder"
    return "other"


def credential(headers):
    """The token in an Authorization header: bearer, `token`, or the
    password (else the user) of basic auth."""
    value = headers.get("Authorization")
    if not value or " " not in value:
        return None
    scheme, rest = value.split(" ", 1)
    if scheme.lower() in ("bearer", "token"):
        return rest.strip()
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
        except Exception:
            return "?"
        return password or user
    return "?"


def app_key():
    """A private key for a new app, made now (as GitHub makes one per app)."""
    out = subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519"], capture_output=True, check=True)
    return out.stdout.decode()


def new_tokens():
    access = "ghu_" + secrets.token_hex(18)
    refresh = "ghr_" + secrets.token_hex(30)
    with LOCK:
        ACCESS[access] = {"exp": time.time() + 28800, "perms": None, "repos": None}
        REFRESH.add(refresh)
        ISSUED.append(access)
    return {
        "access_token": access,
        "expires_in": 28800,
        "refresh_token": refresh,
        "refresh_token_expires_in": 15897600,
        "scope": "",
        "token_type": "bearer",
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    role = "api"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.role, fmt % args))

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, obj=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if raw is None and obj is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, path):
        token = credential(self.headers)
        kind = classify(token)
        t = live(token) if token else None
        repos = ["/".join(r) for r in t["repos"]] if t and t["repos"] is not None else None
        with LOCK:
            SEEN.append({"role": self.role, "method": self.command, "path": path, "auth": kind, "repos": repos})
        return kind

    def allowed(self, owner, repo, perm, level):
        """None if the token may; else the refusal GitHub gives."""
        t = live(credential(self.headers))
        if t["repos"] is not None and (owner, repo) not in t["repos"]:
            return (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        # Metadata is every GitHub App's, read-only.
        have = (t["perms"] or {}).get(perm, "read" if perm == "metadata" else None) if t["perms"] is not None else "write"
        if have is None or (level == "write" and have != "write"):
            return (403, {"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest"})
        return None

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.body()
        if self.role == "other":
            return self.send(200, {"auth": self.record(url.path)})
        if self.role == "git":
            return self.git(url, body)
        return self.api(url, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = lambda self: self.dispatch()

    # --- api.github.com -------------------------------------------------

    def api(self, url, body):
        path = url.path
        if path == "/_standin/seen":
            with LOCK:
                return self.send(200, list(SEEN))
        if path == "/_standin/issued":
            with LOCK:
                return self.send(200, list(ISSUED))
        if path == "/_standin/apps":
            with LOCK:
                return self.send(200, list(APPS))
        if path == "/_standin/echo":
            self.record(path)
            echo = {"X-Echo-Authorization": self.headers.get("Authorization", "")}
            return self.send(200, {"headers": dict(self.headers.items())}, headers=echo)
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[0] == "app-manifests" and parts[2] == "conversions" and self.command == "POST":
            return self.conversions(parts[1])
        if len(parts) == 4 and parts[0] == "applications" and parts[2:] == ["token", "scoped"]:
            return self.scoped(parts[1], body)
        kind = self.record(path)
        if kind == "none":
            return self.anonymous_api(parts)
        if kind not in ("issued", "scoped"):
            return self.send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
        if parts == ["graphql"] and self.command == "POST":
            return self.graphql(body)
        return self.repo_api(parts)

    def graphql(self, body):
        """POST /graphql for the one query the tests' clients send,
        `repository(owner:, name:)` (gh repo view): the repository's
        fields as GitHub's schema types them (a client's JSON decoder takes
        the ones it asked for), or GitHub's NOT_FOUND error where the token
        may not see it."""
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return self.send(400, {"message": "Problems parsing JSON"})
        v = doc.get("variables") or {}
        owner, name = v.get("owner"), v.get("name") or v.get("repo")
        if "repository(" not in doc.get("query", "") or not owner or not name:
            return self.send(200, {"errors": [{"message": "the stand-in answers repository(owner:, name:) only"}]})
        if self.allowed(owner, name, "metadata", "read") or not os.path.isdir(os.path.join(ARGS.repos, owner, name + ".git")):
            return self.send(200, {"data": {"repository": None}, "errors": [{"type": "NOT_FOUND", "path": ["repository"], "message": f"Could not resolve to a Repository with the name '{owner}/{name}'."}]})
        return self.send(200, {"data": {"repository": repository(owner, name)}})

    def anonymous_api(self, parts):
        """No credential, as GitHub answers it: a public repository is read,
        a private one (or a write) is 404 Not Found, so its existence is not
        told, and anything else needs authentication."""
        if len(parts) >= 3 and parts[0] == "repos":
            if public(parts[1], parts[2]) and self.command in ("GET", "HEAD"):
                return self.repo_api(parts, anonymous=True)
            return self.send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
        return self.send(401, {"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest", "status": "401"})

    def repo_api(self, parts, anonymous=False):
        if parts == ["user"]:
            return self.send(200, {"login": "octocat", "id": 1, "type": "User"})
        if len(parts) >= 3 and parts[0] == "repos":
            perm = "contents" if len(parts) >= 4 and parts[3] == "contents" else "metadata"
            if self.command == "DELETE" and len(parts) == 3:
                perm = "administration"
            level = "read" if self.command in ("GET", "HEAD") else "write"
            refused = None if anonymous else self.allowed(parts[1], parts[2], perm, level)
            if refused:
                return self.send(*refused)
        if len(parts) == 3 and parts[0] == "repos":
            if self.command == "DELETE":
                return self.send(204)
            private = not public(parts[1], parts[2])
            return self.send(200, {"id": 1296269, "name": parts[2], "full_name": parts[1] + "/" + parts[2], "private": private})
        if len(parts) >= 4 and parts[0] == "repos" and parts[3] == "contents":
            content = base64.b64encode(b"hello from the stand-in\n").decode()
            return self.send(200, {"type": "file", "encoding": "base64", "path": "/".join(parts[4:]), "content": content})
        if len(parts) == 4 and parts[0] == "repos" and parts[3] == "readme":
            content = base64.b64encode(b"hello from the stand-in repository\n").decode()
            return self.send(200, {"type": "file", "name": "README", "path": "README", "encoding": "base64", "content": content})
        return self.send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def new_app(self, url, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        q = dict(urllib.parse.parse_qsl(url.query))
        try:
            manifest = json.loads(form["manifest"])
            redirect = manifest["redirect_url"]
        except (KeyError, ValueError):
            return self.send(422, {"message": "Invalid manifest"})
        code = secrets.token_hex(10)
        with LOCK:
            MANIFESTS[code] = manifest
        target = redirect + "?" + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        return self.send(302, headers={"Location": target})

    def conversions(self, code):
        with LOCK:
            manifest = MANIFESTS.pop(code, None)
        if manifest is None:
            return self.send(404, {"message": "Not Found"})
        client_id = "Iv1." + secrets.token_hex(8)
        secret = secrets.token_hex(20)
        slug = "".join(c if c.isalnum() else "-" for c in manifest.get("name", "app").lower()).strip("-")
        app = {"id": 1000 + len(APPS), "slug": slug, "name": manifest.get("name"), "client_id": client_id,
               "permissions": manifest.get("default_permissions", {}), "callback_urls": manifest.get("callback_urls", [])}
        with LOCK:
            CLIENTS[client_id] = secret
            APPS.append(dict(app, client_secret=secret))
        return self.send(201, dict(app, client_secret=secret, webhook_secret=secrets.token_hex(10),
                                   pem=app_key(),
                                   html_url="https://github.com/apps/" + slug))

    def scoped(self, client_id, body):
        if not self.client_ok({}) or self.basic_user() != client_id:
            return self.send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self.send(400, {"message": "Problems parsing JSON"})
        base = live(req.get("access_token"))
        if not base or base["perms"] is not None:
            return self.send(404, {"message": "Not Found"})
        perms = req.get("permissions") or {}
        repos = None
        if req.get("repositories") is not None:
            if not req.get("target"):
                return self.send(422, {"message": "target is required with repositories"})
            repos = [(req["target"], r) for r in req["repositories"]]
        token = "ghu_" + secrets.token_hex(18)
        with LOCK:
            ACCESS[token] = {"exp": base["exp"], "perms": perms, "repos": repos}
            ISSUED.append(token)
        return self.send(200, {
            "id": 1, "token": token, "token_last_eight": token[-8:], "scopes": [],
            "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base["exp"])),
            "permissions": perms,
            "repositories": [{"name": r, "full_name": o + "/" + r} for o, r in (repos or [])],
        })

    # --- github.com -----------------------------------------------------

    def git(self, url, body):
        if url.path == "/settings/apps/new" and self.command == "POST":
            return self.new_app(url, body)
        if url.path == "/login/oauth/authorize":
            return self.authorize(url)
        if url.path == "/login/oauth/access_token":
            return self.token(body)
        kind = self.record(url.path)
        parts = [p for p in url.path.split("/") if p]
        push = url.path.endswith("git-receive-pack") or "service=git-receive-pack" in url.query
        if kind == "none" and len(parts) >= 2 and not push and public(parts[0], parts[1].removesuffix(".git")):
            return self.backend(url, body)
        if kind not in ("issued", "scoped"):
            return self.send(401, raw=b"", headers={"WWW-Authenticate": 'Basic realm="GitHub"'})
        if len(parts) >= 2:
            refused = self.allowed(parts[0], parts[1].removesuffix(".git"), "contents", "write" if push else "read")
            if refused:
                return self.send(refused[0], raw=refused[1]["message"].encode())
        return self.backend(url, body)

    def authorize(self, url):
        q = dict(urllib.parse.parse_qsl(url.query))
        if q.get("client_id") not in CLIENTS or q.get("code_challenge_method") != "S256":
            return self.send(400, {"error": "invalid_request"})
        code = secrets.token_hex(10)
        with LOCK:
            CODES[code] = (q.get("code_challenge"), q.get("redirect_uri"))
        target = q["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": q.get("state", "")})
        return self.send(302, headers={"Location": target})

    def basic_user(self):
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("basic "):
            return None
        return urllib.parse.unquote_plus(base64.b64decode(auth[6:]).decode().partition(":")[0])

    def client_ok(self, form):
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            user, pw = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(pw)
        else:
            user, pw = form.get("client_id"), form.get("client_secret")
        with LOCK:
            return user in CLIENTS and CLIENTS[user] == pw

    def token(self, body):
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if not self.client_ok(form):
            return self.send(200, {"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."})
        grant = form.get("grant_type", "authorization_code")
        if grant == "authorization_code":
            with LOCK:
                challenge, redirect = CODES.pop(form.get("code"), (None, None))
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge is None or digest != challenge:
                return self.send(200, {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
            return self.send(200, new_tokens())
        if grant == "refresh_token":
            with LOCK:
                known = form.get("refresh_token") in REFRESH
                REFRESH.discard(form.get("refresh_token"))
            if not known:
                return self.send(200, {"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect or expired."})
            return self.send(200, new_tokens())
        return self.send(200, {"error": "unsupported_grant_type"})

    def backend(self, url, body):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ARGS.repos,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": "octocat",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(url.path),
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                headers[k] = v.strip()
        return self.send(status, headers=headers, raw=payload)


def serve(role, port, context):
    handler = type(role.capitalize() + "Handler", (Handler,), {"role": role})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    for a in ("cert", "key", "repos", "client-id", "client-secret"):
        p.add_argument("--" + a, required=True)
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--git-port", type=int, required=True)
    p.add_argument("--other-port", type=int)
    p.add_argument("--public", action="append", default=[], metavar="OWNER/REPO")
    ARGS = p.parse_args()
    CLIENTS[ARGS.client_id] = ARGS.client_secret
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ARGS.cert, ARGS.key)
    serve("api", ARGS.api_port, context)
    serve("git", ARGS.git_port, context)
    if ARGS.other_port:
        serve("other", ARGS.other_port, context)
    print(json.dumps({"ready": True}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
