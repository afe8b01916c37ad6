"""The official MCP Python SDK against Warden (driven by
crates/warden-server/tests/python_clients.rs with settings as JSON on stdin).

A small MCP server (the SDK's MCPServer) is protected by Warden: it verifies bearer
tokens by introspection and asks Warden's delegated decision on every tool call. The
SDK's client discovers everything itself (RFC 9728 metadata from the MCP server, RFC
8414 from Warden), registers (RFC 7591), runs the code flow with PKCE through Warden's
real sign-in and consent pages, and calls a tool with an audience-bound token: allowed;
then, after the tokens are revoked, the call is refused.
"""

import asyncio
import json
import re
import sys
import threading
import time
from urllib.parse import parse_qs, urlparse

import requests
import uvicorn
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientMetadata

cfg = json.load(sys.stdin)
base, org, api_key = cfg["base"], cfg["org"], cfg["api_key"]
MCP_URL = f"http://127.0.0.1:{cfg['mcp_port']}/mcp"


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


class WardenVerifier:
    """Bearer tokens are Warden's: introspect them (active, not revoked, principals active)."""

    async def verify_token(self, token):
        r = await asyncio.to_thread(
            requests.post,
            f"{base}/oauth2/introspect",
            headers={"Authorization": f"Bearer {api_key}"},
            data={"token": token},
            timeout=10,
        )
        info = r.json()
        if not info.get("active"):
            return None
        return AccessToken(
            token=token,
            client_id=info["client_id"],
            scopes=info["scope"].split(),
            expires_at=info["exp"],
            resource=info["aud"],
        )


server = MCPServer(
    "docs",
    token_verifier=WardenVerifier(),
    auth=AuthSettings(issuer_url=base, resource_server_url=MCP_URL, required_scopes=["docs.read"]),
)


@server.tool()
async def read_doc(doc_id: str) -> str:
    """Reads a document, if Warden allows the agent and its user."""
    token = get_access_token()
    r = await asyncio.to_thread(
        requests.post,
        f"{base}/v1/orgs/{org}/authorize",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"token": token.token, "audience": MCP_URL, "relation": "viewer",
              "object": f"document:{doc_id}"},
        timeout=10,
    )
    if not r.json().get("allowed"):
        raise ValueError(f"Warden denied: {r.json().get('reasons')}")
    return f"contents of document {doc_id}"


uv = uvicorn.Server(uvicorn.Config(server.streamable_http_app(), host="127.0.0.1",
                                   port=cfg["mcp_port"], log_level="warning"))
threading.Thread(target=uv.run, daemon=True).start()
for _ in range(100):
    if uv.started:
        break
    time.sleep(0.05)


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


storage = Memory()
flow = {"logins": 0}


def sign_in(url):
    """A user at the browser: Warden's sign-in page, then its consent page."""
    s = requests.Session()
    page = s.get(url, timeout=10, allow_redirects=False)
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
    page = s.post(f"{base}/oauth2/authorize/signin", timeout=10, allow_redirects=False,
                  data={"ticket": ticket, "username": cfg["username"], "password": cfg["password"]})
    ticket = re.search(r'name="ticket" value="([^"]+)"', page.text).group(1)
    done = s.post(f"{base}/oauth2/authorize/consent", timeout=10, allow_redirects=False,
                  data={"ticket": ticket, "decision": "approve"})
    q = parse_qs(urlparse(done.headers["location"]).query)
    return q["code"][0], q.get("state", [None])[0], q["iss"][0]


async def redirect_handler(url):
    flow["logins"] += 1
    if flow["logins"] > 1:
        raise RuntimeError("the user refuses to sign in again")
    flow["code"], flow["state"], flow["iss"] = await asyncio.to_thread(sign_in, url)


async def callback_handler():
    return AuthorizationCodeResult(code=flow["code"], state=flow["state"], iss=flow["iss"])


provider = OAuthClientProvider(
    server_url=MCP_URL,
    client_metadata=OAuthClientMetadata(
        redirect_uris=["http://127.0.0.1:9/callback"],
        client_name="MCP e2e",
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
        scope="docs.read",
    ),
    storage=storage,
    redirect_handler=redirect_handler,
    callback_handler=callback_handler,
)


def text_of(result):
    return " ".join(getattr(c, "text", "") for c in getattr(result, "content", []) or [])


async def main():
    async with create_mcp_http_client(auth=provider) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                ok = await session.call_tool("read_doc", {"doc_id": "1"})
                check(not ok.is_error and "contents of document 1" in text_of(ok), "tool call allowed")
                no = await session.call_tool("read_doc", {"doc_id": "2"})
                check(no.is_error, "tool call denied where the user lacks the relation")
                client_id = storage.client.client_id
                check(client_id.startswith("dyn-"), "the SDK registered itself")
                claims = json.loads(__import__("base64").urlsafe_b64decode(
                    storage.tokens.access_token.split(".")[1] + "=="))
                check(claims["aud"] == MCP_URL, "the token is bound to the MCP server")
                for t in [storage.tokens.access_token, storage.tokens.refresh_token]:
                    if t:
                        r = requests.post(f"{base}/oauth2/revoke", timeout=10,
                                          data={"client_id": client_id, "token": t})
                        check(r.status_code == 200, "token revoked")
                flow["revoked"] = True
                after = await session.call_tool("read_doc", {"doc_id": "1"})
                check(after.is_error, "tool call refused after revocation")


def caused_by_refused_sign_in(e):
    """Whether `e` (or an exception group inside it) ends in the refused second sign-in."""
    if isinstance(e, BaseExceptionGroup):
        return any(caused_by_refused_sign_in(x) for x in e.exceptions)
    return "refuses to sign in again" in str(e) or (
        e.__cause__ is not None and caused_by_refused_sign_in(e.__cause__)
    )


try:
    asyncio.run(main())
except BaseException as e:  # noqa: BLE001 - inspected below
    # After revocation the server answers 401; the SDK's refresh is refused (the family
    # was revoked) and it asks the user to sign in again, which the user refuses.
    check(flow.get("revoked") and caused_by_refused_sign_in(e),
          "tool call refused after revocation (re-authorization required)")
check(flow["logins"] == 2, "one sign-in, and after revocation a new one was required")
print("all passed", flush=True)
uv.should_exit = True
