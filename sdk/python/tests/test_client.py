"""The Python SDK against the real daemon (see conftest.py)."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import valetkey
from valetkey import errors
from valetkey.aio import AsyncClient

ROOT = Path(__file__).resolve().parents[3]


def test_the_socket_is_found_by_the_daemons_rule_even_in_a_reduced_environment(tmp_path, monkeypatch):
    import os

    uid = os.getuid()
    for k in ("VALETKEY_SOCKET", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(k, raising=False)
    assert valetkey.socket_path(str(tmp_path)) == f"/tmp/valetkey-{uid}/agent.sock"
    (tmp_path / str(uid)).mkdir(mode=0o700)
    assert valetkey.socket_path(str(tmp_path)) == str(tmp_path / str(uid) / "valetkey" / "agent.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/x")
    assert valetkey.socket_path(str(tmp_path)) == "/x/valetkey/agent.sock"
    monkeypatch.setenv("VALETKEY_SOCKET", "/s.sock")
    assert valetkey.socket_path(str(tmp_path)) == "/s.sock"


def test_error_classes_are_the_schemas_codes():
    gen = subprocess.run([sys.executable, str(ROOT / "sdk" / "gen.py"), "--check"], capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    import json

    schema = json.loads((ROOT / "ipc-schema" / "schema" / "agent-protocol.json").read_text())
    assert schema["x-protocol-version"] == valetkey.PROTOCOL_VERSION
    for e in schema["x-errors"]:
        klass = errors.BY_CODE[e["code"]]
        assert klass.name == e["name"] and issubclass(klass, valetkey.ValetKeyError)
    assert errors.ConsentRequiredError.code == 2000
    assert errors.from_rpc({"code": 9999, "message": "new"}).__class__ is valetkey.ValetKeyError


def test_a_granted_agent_gets_a_narrowed_token_that_repr_never_shows(provider):
    with valetkey.Client("py-granted", purpose="sdk test") as vk:
        assert vk.hello_result["identity"]["exe"].startswith("/")
        tok = vk.token(provider, ["repo:read"])
        assert tok.scopes == ["repo:read"] and tok.provider == provider
        assert tok.expires_at > 0 and tok.authorization == "Bearer " + tok.access_token
        assert tok.access_token not in repr(tok)
        assert vk.token(provider, "repo:read").access_token == tok.access_token, "cached"
        names = [p["name"] for p in vk.providers()]
        assert provider in names
        assert vk.whoami()["agent"]["name"] == "py-granted"


def test_each_refusal_is_its_own_exception_class(provider):
    with valetkey.Client("py-granted") as vk:
        with pytest.raises(errors.UnknownProviderError) as e:
            vk.token("nope", ["repo:read"])
        assert e.value.code == 2003 and e.value.name == "unknown_provider"
        with pytest.raises(errors.ScopeNotAllowedError) as e:
            vk.token(provider, ["admin:everything"])
        assert e.value.data["not_allowed"] == ["admin:everything"]
        with pytest.raises(errors.ScopeNotGrantedError):
            vk.token(provider, ["repo:write"])
        # The connection is still good after refusals.
        assert vk.token(provider, ["repo:read"]).scopes == ["repo:read"]


def test_no_grant_gives_consent_required_then_consent_wait_gets_the_token(provider, cli):
    with valetkey.Client("py-asker", purpose="asks first") as vk:
        with pytest.raises(errors.ConsentRequiredError) as e:
            vk.token(provider, ["issues:read"], wait=False, duration=600)
        consent_id = e.value.data["consent_id"]
        assert consent_id.startswith("c_")
        cli("consent", "allow", consent_id, "--for", "10m")
        tok = vk.consent_wait(consent_id)
        assert tok.scopes == ["issues:read"]
        with pytest.raises(errors.UnknownConsentError):
            vk.consent_wait("c_" + "0" * 32)


def test_the_asyncio_client_does_the_same_and_shares_one_connection(provider):
    async def main():
        async with AsyncClient("py-granted") as vk:
            toks = await asyncio.gather(*(vk.token(provider, ["repo:read"]) for _ in range(5)))
            assert len({t.access_token for t in toks}) == 1
            with pytest.raises(errors.UnknownProviderError):
                await vk.token("nope", ["x"])
            assert (await vk.whoami())["agent"]["name"] == "py-granted"

    asyncio.run(main())


def test_a_delegation_makes_a_sub_agent_that_gets_no_more(provider):
    with valetkey.Client("py-granted") as parent:
        d = parent.delegate("py-sub", provider, ["repo:read"], 300)
        assert d["depth"] == 1 and d["scopes"] == ["repo:read"]
    with valetkey.Client("py-sub", delegation=d["token"]) as sub:
        assert sub.hello_result["delegation"]["chain"][-1] == "agent:py-sub"
        assert sub.token(provider, ["repo:read"]).scopes == ["repo:read"]
        with pytest.raises(errors.ScopeNotGrantedError):
            sub.token(provider, ["repo:write"])
    with pytest.raises(errors.DelegationInvalidError):
        valetkey.Client("py-sub", delegation="not.a.token").connect()


class _Req:
    def __init__(self):
        self.headers = {}


class _Counting:
    """A Client that counts token.get calls."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def token(self, *a, **kw):
        self.calls += 1
        return self.inner.token(*a, **kw)


def test_token_auth_puts_the_token_on_requests_and_refetches_near_expiry(provider):
    with valetkey.Client("py-granted") as vk:
        counting = _Counting(vk)
        now = [0.0]
        auth = valetkey.TokenAuth(counting, provider, ["repo:read"], clock=lambda: now[0])
        tok = vk.token(provider, ["repo:read"])
        now[0] = tok.expires_at - 3600
        r = auth(_Req())
        assert r.headers["Authorization"] == tok.authorization
        auth(_Req())
        assert counting.calls == 1, "cached while fresh"
        now[0] = tok.expires_at - 10
        auth(_Req())
        assert counting.calls == 2, "fetched again near expiry"


def test_an_unreachable_daemon_says_so(tmp_path):
    with pytest.raises(valetkey.ConnectionError_) as e:
        valetkey.Client("x", socket_path=str(tmp_path / "nothing.sock")).connect()
    assert "valetkey status" in str(e.value)
